// Package catalog generates Stampede's product catalog, deterministically:
// the same size always gives the same products, ids, prices and stock. The
// search service seeds its catalog from it and the order service its
// inventory, so the two agree without talking to each other.
//
// The flash-sale products come first, with fixed ids the replay uses:
//
//	id 1  FLASH-0001  iPhone 17 Pro 256GB      the promotion's hot SKU, stock 100
//	id 2  FLASH-0002  Nimbus Air Laptop 14     stock 50
//	id 3  FLASH-0003  Echo Buds Max Headphones stock 200
package catalog

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Seed is the fixed random seed of the catalog.
const Seed = 20261124

// DefaultSize is the number of products `make seed` creates.
const DefaultSize = 10_000

// Flash-sale product ids, used by the replay.
const (
	HotProductID = 1
	FlashLaptop  = 2
	FlashBuds    = 3
)

// Product is one catalog entry, with its initial stock.
type Product struct {
	ID          int64
	SKU         string
	Name        string
	Description string
	Category    string
	PriceCents  int64
	Currency    string
	Stock       int64
}

type category struct {
	name     string
	nouns    []string
	minPrice int64 // cents
	maxPrice int64
}

var (
	categories = []category{
		{"phones", []string{"Phone", "Smartphone", "Phone Mini", "Phone Max"}, 9_900, 149_900},
		{"laptops", []string{"Laptop", "Notebook", "Ultrabook", "Chromebook"}, 29_900, 349_900},
		{"headphones", []string{"Headphones", "Earbuds", "Headset", "Buds"}, 1_900, 49_900},
		{"shoes", []string{"Running Shoes", "Sneakers", "Trail Shoes", "Boots"}, 3_900, 24_900},
		{"books", []string{"Cookbook", "Novel", "Field Guide", "Handbook"}, 900, 5_900},
		{"kitchen", []string{"Coffee Grinder", "Chef Knife", "Blender", "Kettle"}, 1_500, 39_900},
		{"toys", []string{"Building Set", "Puzzle", "Robot Kit", "Board Game"}, 990, 14_900},
		{"garden", []string{"Hose", "Pruning Shears", "Planter", "Lawn Mower"}, 1_200, 59_900},
		{"watches", []string{"Smartwatch", "Dive Watch", "Chronograph", "Fitness Band"}, 4_900, 89_900},
		{"cameras", []string{"Mirrorless Camera", "Action Camera", "Lens 50mm", "Instant Camera"}, 7_900, 299_900},
	}
	brands     = []string{"Nimbus", "Aster", "Kestrel", "Orbit", "Pioneer", "Vela", "Juniper", "Summit", "Lumen", "Harbor", "Quill", "Tundra"}
	adjectives = []string{"Classic", "Pro", "Lite", "Ultra", "Eco", "Compact", "Deluxe", "Sport", "Studio", "Travel", "Smart", "Essential"}
	colors     = []string{"Black", "White", "Graphite", "Silver", "Blue", "Green", "Red", "Sand"}
	qualities  = []string{"durable", "lightweight", "award-winning", "repairable", "energy-efficient", "handcrafted", "water-resistant", "quiet"}
)

var flash = []Product{
	{ID: HotProductID, SKU: "FLASH-0001", Name: "iPhone 17 Pro 256GB", Category: "phones", PriceCents: 99_900, Stock: 100,
		Description: "The promotion's headline deal: a flagship phone with a pro camera, 256GB of storage and all-day battery."},
	{ID: FlashLaptop, SKU: "FLASH-0002", Name: "Nimbus Air Laptop 14", Category: "laptops", PriceCents: 79_900, Stock: 50,
		Description: "A thin and light laptop with a 14-inch display, for the flash sale only."},
	{ID: FlashBuds, SKU: "FLASH-0003", Name: "Echo Buds Max Headphones", Category: "headphones", PriceCents: 9_900, Stock: 200,
		Description: "Noise-cancelling wireless headphones at half price during the flash sale."},
}

// Generate returns n products (at least the flash-sale ones), ids 1..n.
func Generate(n int) []Product {
	n = max(n, len(flash))
	r := rand.New(rand.NewPCG(Seed, Seed>>1)) //nolint:gosec // reproducible on purpose: a seeded catalog, not a secret
	out := make([]Product, 0, n)
	for _, p := range flash {
		p.Currency = "EUR"
		out = append(out, p)
	}
	for id := int64(len(flash) + 1); len(out) < n; id++ {
		c := categories[r.IntN(len(categories))]
		brand, adj, noun := pick(r, brands), pick(r, adjectives), pick(r, c.nouns)
		color := pick(r, colors)
		// Prices end in 99 or 49 cents, as shop prices do.
		price := c.minPrice + r.Int64N(c.maxPrice-c.minPrice)
		price = price/100*100 + []int64{99, 49}[r.IntN(2)]
		// Two qualities, never the same one twice ("durable and durable"):
		// the second draw moves on to the next instead of drawing again, so
		// every other product stays as it was.
		q1, q2 := r.IntN(len(qualities)), r.IntN(len(qualities))
		if q2 == q1 {
			q2 = (q2 + 1) % len(qualities)
		}
		out = append(out, Product{
			ID:       id,
			SKU:      fmt.Sprintf("%s-%06d", strings.ToUpper(c.name[:3]), id),
			Name:     fmt.Sprintf("%s %s %s %s", brand, adj, noun, color),
			Category: c.name,
			Description: fmt.Sprintf("%s for everyday use from %s in %s, %s and %s.",
				some(adj, noun), brand, strings.ToLower(color), qualities[q1], qualities[q2]),
			PriceCents: price,
			Currency:   "EUR",
			Stock:      10 + r.Int64N(990),
		})
	}
	return out
}

// Categories lists the category names.
func Categories() []string {
	names := make([]string, len(categories))
	for i, c := range categories {
		names[i] = c.name
	}
	return names
}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

// some opens a description: "A classic kettle", "An ultra kettle", and no
// article for a plural ("Classic sneakers": every noun of the catalog that
// ends in s is one).
func some(adj, noun string) string {
	p := strings.ToLower(adj + " " + noun)
	switch {
	case strings.HasSuffix(p, "s"):
		return strings.ToUpper(p[:1]) + p[1:]
	case strings.ContainsRune("aeiou", rune(p[0])):
		return "An " + p
	}
	return "A " + p
}
