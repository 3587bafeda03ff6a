package products_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/stampede-shop/stampede/services/search/products"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		raw   string
		field string // "" = valid
	}{
		{"", ""},
		{"q=iphone&category=phones&min_price=100&max_price=200&limit=100", ""},
		{"limit=1", ""},
		{"limit=0", "limit"},
		{"limit=1000", "limit"},
		{"limit=ten", "limit"},
		{"min_price=-1", "min_price"},
		{"max_price=cheap", "max_price"},
		{"min_price=300&max_price=200", "min_price"},
		{"category=spaceships", "category"},
		{"q=" + strings.Repeat("a", 201), "q"},
		{"q=lap%00top", "q"}, // a NUL byte: Postgres refuses it in text
		{"q=%ff%fe", "q"},    // not UTF-8
		{"q=%c3", "q"},       // half of a two-byte character
		{"q=caf%c3%a9", ""},  // café
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.raw)
			q, problems := products.ParseQuery(v)
			if tt.field == "" {
				if len(problems) != 0 {
					t.Fatalf("want valid, got %v", problems)
				}
				if q.Limit < 1 || q.Limit > 100 {
					t.Fatalf("limit %d", q.Limit)
				}
				return
			}
			if _, ok := problems[tt.field]; !ok || len(problems) != 1 {
				t.Fatalf("want a problem with %s only, got %v", tt.field, problems)
			}
		})
	}
}

func TestCursorsAreSignedAndBoundToTheirQuery(t *testing.T) {
	c := products.NewCursors("secret")
	q := products.Query{Text: "laptop", Limit: 10}
	s := c.Encode(products.Cursor{Mode: products.ModeText, Rank: 0.25, ID: 42}, q)

	got, err := c.Decode(s, products.Query{Text: "LAPTOP", Limit: 50}) // same result set, other page size
	if err != nil || got.ID != 42 || got.Rank != 0.25 || got.Mode != products.ModeText {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	payload, sig, _ := strings.Cut(s, ".")
	for name, bad := range map[string]string{
		"other query":    "",
		"other secret":   products.NewCursors("other").Encode(products.Cursor{Mode: products.ModeText, ID: 42}, q),
		"tampered":       payload[:len(payload)-2] + "xx." + sig,
		"no signature":   payload,
		"garbage":        "%%%",
		"empty":          ".",
		"signature only": "." + sig,
	} {
		query := q
		if name == "other query" {
			bad, query = s, products.Query{Text: "phone", Limit: 10}
		}
		if _, err := c.Decode(bad, query); !errors.Is(err, products.ErrBadCursor) {
			t.Errorf("%s: got %v, want ErrBadCursor", name, err)
		}
	}
}
