// Package products is the search service's domain: the catalog as shoppers
// see it, the search query and its validation, keyset pages with signed
// cursors, and the use cases. It imports no adapter.
package products

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/events"
)

// Product is a catalog entry with its live sales figures.
type Product struct {
	ID          int64  `json:"id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Category    string `json:"category"`
	PriceCents  int64  `json:"price_cents"`
	Currency    string `json:"currency"`
	Sold        int64  `json:"sold"`
	InStock     int64  `json:"in_stock"`
}

// Hit is a product with the rank it was found at; the rank is part of the
// keyset that pages are cut on.
type Hit struct {
	Product
	Rank float32
}

// Mode is how a query is matched.
type Mode string

const (
	ModeList    Mode = "list"    // no text: by id
	ModeText    Mode = "text"    // full-text, websearch_to_tsquery, ranked by ts_rank
	ModeTrigram Mode = "trigram" // typo tolerance: word similarity on the name
)

// ErrNotFound is a product that does not exist.
var ErrNotFound = errors.New("products: not found")

// Store reads and updates the catalog.
type Store interface {
	// Search returns up to limit hits of q in mode, after the cursor if any.
	Search(ctx context.Context, mode Mode, q Query, after *Cursor, limit int) ([]Hit, error)
	Product(ctx context.Context, id int64) (Product, error)
	// ApplySold records an event's items as sold, once per event id.
	ApplySold(ctx context.Context, consumer, eventID string, items []events.Item) (applied bool, err error)
}

// Query is a search request: GET /v1/products?q=&category=&min_price=&max_price=&limit=&cursor=
type Query struct {
	Text     string
	Category string
	MinPrice *int64
	MaxPrice *int64
	Limit    int
	Cursor   string
}

// Limits of a query.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	maxTextLen   = 200
)

// ParseQuery reads a query from URL parameters and reports the problems by
// parameter; a query with problems must not be run.
func ParseQuery(v url.Values) (Query, map[string]string) {
	problems := map[string]string{}
	q := Query{Text: strings.TrimSpace(v.Get("q")), Category: v.Get("category"), Limit: DefaultLimit, Cursor: v.Get("cursor")}
	switch {
	case !utf8.ValidString(q.Text) || strings.ContainsRune(q.Text, 0):
		// Postgres refuses both outright (its text holds UTF-8 and no NUL):
		// said here, it is the client's mistake, not the database's error.
		problems["q"] = "must be UTF-8 text without NUL characters"
	case utf8.RuneCountInString(q.Text) > maxTextLen:
		problems["q"] = "must be at most 200 characters"
	}
	if q.Category != "" && !slices.Contains(catalog.Categories(), q.Category) {
		problems["category"] = "must be one of " + strings.Join(catalog.Categories(), ", ")
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			problems["limit"] = "must be an integer from 1 to 100"
		}
		q.Limit = n
	}
	price := func(name string) *int64 {
		s := v.Get(name)
		if s == "" {
			return nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			problems[name] = "must be a non-negative integer (cents)"
			return nil
		}
		return &n
	}
	q.MinPrice, q.MaxPrice = price("min_price"), price("max_price")
	if q.MinPrice != nil && q.MaxPrice != nil && *q.MinPrice > *q.MaxPrice {
		problems["min_price"] = "must not be greater than max_price"
	}
	return q, problems
}

// key identifies the result set a cursor belongs to (everything but the
// cursor and the limit), so a cursor cannot be replayed against another query.
func (q Query) key() string {
	var b strings.Builder
	b.WriteString(strings.ToLower(q.Text))
	b.WriteByte(0)
	b.WriteString(q.Category)
	for _, p := range []*int64{q.MinPrice, q.MaxPrice} {
		b.WriteByte(0)
		if p != nil {
			b.WriteString(strconv.FormatInt(*p, 10))
		}
	}
	return b.String()
}

// Page is one page of results.
type Page struct {
	Items      []Product `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty"`
}
