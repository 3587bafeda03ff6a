package catalog_test

import (
	"slices"
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
