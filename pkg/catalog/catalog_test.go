package catalog_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stampede-shop/stampede/pkg/catalog"
)

func TestGenerateIsDeterministicAndSane(t *testing.T) {
	a, b := catalog.Generate(2000), catalog.Generate(2000)
	if !slices.Equal(a, b) {
		t.Fatal("two generations of the same size differ")
	}
	if small := catalog.Generate(500); !slices.Equal(small, a[:500]) {
		t.Fatal("a smaller catalog must be a prefix of a larger one, so ids mean the same product")
	}
	if a[0].ID != catalog.HotProductID || a[0].SKU != "FLASH-0001" || a[0].Stock != 100 {
		t.Fatalf("hot product: %+v", a[0])
	}
	skus := map[string]bool{}
	cats := map[string]bool{}
	for i, p := range a {
		if p.ID != int64(i+1) {
			t.Fatalf("product %d has id %d", i, p.ID)
		}
		if skus[p.SKU] {
			t.Fatalf("duplicate SKU %s", p.SKU)
		}
		skus[p.SKU] = true
		cats[p.Category] = true
		if p.PriceCents <= 0 || p.Stock <= 0 || p.Name == "" || p.Description == "" || p.Currency != "EUR" {
			t.Fatalf("bad product %+v", p)
		}
	}
	if len(cats) != len(catalog.Categories()) {
		t.Fatalf("categories used: %d of %d", len(cats), len(catalog.Categories()))
	}
}

// A description reads as a shop's would: "A classic kettle", "An ultra
// kettle", "Classic sneakers" (a plural takes no article), and two
// different qualities, never "durable and durable".
func TestDescriptionsRead(t *testing.T) {
	line := regexp.MustCompile(`^(?:(An?) )?([A-Za-z]+) ([a-z0-9 ]+) for everyday use from [A-Z][a-z]+ in [a-z]+, ([a-z-]+) and ([a-z-]+)\.$`)
	for _, p := range catalog.Generate(2000) {
		if strings.HasPrefix(p.SKU, "FLASH-") {
			continue // the promotion's own, written by hand
		}
		m := line.FindStringSubmatch(p.Description)
		if m == nil {
			t.Fatalf("product %d: %q is not a description", p.ID, p.Description)
		}
		article, adj, noun, q1, q2 := m[1], m[2], m[3], m[4], m[5]
		want := "A"
		switch {
		case strings.HasSuffix(noun, "s"):
			want = ""
		case strings.ContainsAny(adj[:1], "aeiou"):
			want = "An"
		}
		if article != want || (want == "") != (adj[:1] == strings.ToUpper(adj[:1])) || q1 == q2 {
			t.Fatalf("product %d: %q", p.ID, p.Description)
		}
	}
}
