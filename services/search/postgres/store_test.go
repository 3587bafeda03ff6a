package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
	"github.com/stampede-shop/stampede/services/search/migrations"
	"github.com/stampede-shop/stampede/services/search/products"
)

func seededStore(t testing.TB, n int) (*Store, *db.DB) {
	t.Helper()
	return seededStoreVia(t, n, nil)
}

// seededStoreVia is seededStore reaching Postgres through the proxy.
func seededStoreVia(t testing.TB, n int, via *testkit.Proxy) (*Store, *db.DB) {
	t.Helper()
	ctx := context.Background()
	maxOpen := 4
	if via != nil {
		maxOpen = 1 // one connection, so each statement is counted on a warm one
	}
	d := testkit.MigratedDB(t, migrations.FS, via, config.DB{MaxOpen: maxOpen, StatementTimeout: 5 * time.Second})
	s := NewStore(d)
	if err := s.Seed(ctx, n); err != nil {
		t.Fatal(err)
	}
	return s, d
}

// Selective searches must be served by the GIN index on the generated
// tsvector, and typos by the trigram index, on the full seeded catalog.
// (A word that a few percent of the catalog contains is, rightly, read with
// a sequential scan of this 2 MB table: the planner knows best there.)
func TestSearchUsesTheIndexes(t *testing.T) {
	t.Parallel()
	_, d := seededStore(t, catalog.DefaultSize)
	for _, c := range []struct {
		mode  products.Mode
		text  string
		index string
	}{
		{products.ModeText, "iphone", "products_search_idx"},
		{products.ModeText, "kestrel chronograph sand", "products_search_idx"},
		{products.ModeTrigram, "iphnoe", "products_name_trgm_idx"},
	} {
		mode, index := c.mode, c.index
		sql, named := searchSQL(mode, products.Query{Text: c.text}, nil, 21)
		var rows []map[string]any
		err := d.Tx(context.Background(), func(tx *gorm.DB) error {
			if mode == products.ModeTrigram {
				tx.Exec(`SET LOCAL pg_trgm.word_similarity_threshold = ` + trigramThreshold)
			}
			return tx.Raw(`EXPLAIN (FORMAT JSON) `+sql, named).Scan(&rows).Error
		})
		if err != nil || len(rows) != 1 {
			t.Fatalf("explain: %v %v", err, rows)
		}
		plan, ok := rows[0]["QUERY PLAN"].(string)
		if !ok { // some drivers decode json columns themselves
			b, _ := json.Marshal(rows[0]["QUERY PLAN"])
			plan = string(b)
		}
		if !strings.Contains(plan, `"Index Name": "`+index+`"`) {
			t.Errorf("%s search does not use %s:\n%s", mode, index, plan)
		}
		if strings.Contains(plan, `"Node Type": "Seq Scan"`) {
			t.Errorf("%s search scans the whole table:\n%s", mode, plan)
		}
	}
}

// An order's event adds its lines to sold and takes them off in_stock once:
// two lines of one product count twice, a redelivery not at all.
func TestApplySoldOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := seededStore(t, 50)
	before, err := s.Product(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	ev := uuid.NewString()
	lines := []events.Item{{ProductID: 4, Quantity: 2}, {ProductID: 4, Quantity: 3}, {ProductID: 5, Quantity: 1}}
	for i, want := range []bool{true, false} {
		if applied, err := s.ApplySold(ctx, "test", ev, lines); err != nil || applied != want {
			t.Fatalf("delivery %d: applied %v, %v; want %v", i+1, applied, err, want)
		}
	}
	after, err := s.Product(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if after.Sold != before.Sold+5 || after.InStock != max(before.InStock-5, 0) {
		t.Fatalf("product 4 sold %d, in stock %d; want %d and %d", after.Sold, after.InStock, before.Sold+5, max(before.InStock-5, 0))
	}
}

// A typo's search lowers the trigram threshold for itself only: the next
// statement on the same connection (the pool holds one) sees the default.
func TestATyposThresholdIsItsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, d := seededStoreVia(t, 50, testkit.NewProxy(t, "127.0.0.1:5432", true))
	threshold := func() (v string) {
		if err := d.Do(ctx, func(g *gorm.DB) error {
			return g.Raw(`SELECT current_setting('pg_trgm.word_similarity_threshold')`).Scan(&v).Error
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := threshold()
	if hits, err := s.Search(ctx, products.ModeTrigram, products.Query{Text: "iphnoe"}, nil, 10); err != nil || len(hits) == 0 {
		t.Fatalf("the typo's search: %d hits, %v; want the iPhones (threshold %s)", len(hits), err, trigramThreshold)
	}
	if after := threshold(); after != before || after == trigramThreshold {
		t.Fatalf("threshold after the typo's search %s, want the default it had before, %s", after, before)
	}
}

// Under a slow database every round trip holds a connection for its whole
// length: counted at a proxy, a search, a typo's search (which sets its
// threshold first), a product read or an order's event applied is one.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	proxy := testkit.NewProxy(t, "127.0.0.1:5432", true)
	s, _ := seededStoreVia(t, 50, proxy)
	word := strings.Fields(catalog.Generate(1)[0].Name)[0]
	for _, c := range []struct {
		name string
		want int64
		do   func() (int, error)
	}{
		{"a page of the catalog", 1, func() (int, error) {
			hits, err := s.Search(ctx, products.ModeList, products.Query{}, nil, 10)
			return len(hits), err
		}},
		{"a search", 1, func() (int, error) {
			hits, err := s.Search(ctx, products.ModeText, products.Query{Text: word}, nil, 10)
			return len(hits), err
		}},
		{"a typo's search", 1, func() (int, error) {
			hits, err := s.Search(ctx, products.ModeTrigram, products.Query{Text: word[:len(word)-1]}, nil, 10)
			return len(hits), err
		}},
		{"a product", 1, func() (int, error) {
			_, err := s.Product(ctx, catalog.HotProductID)
			return 1, err
		}},
		{"an order's event applied", 1, func() (int, error) {
			applied, err := s.ApplySold(ctx, "test", uuid.NewString(), []events.Item{{ProductID: 2, Quantity: 1}, {ProductID: 3, Quantity: 1}})
			if !applied {
				return 0, err
			}
			return 1, err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxy.RoundTrips(t, nil, func() error {
				found, err := c.do()
				if err == nil && found == 0 {
					err = errors.New("found nothing")
				}
				return err
			})
			if got != c.want {
				t.Errorf("%d round trips, want %d", got, c.want)
			}
		})
	}
}

func TestSeedIsIdempotentAndMatchesTheCatalog(t *testing.T) {
	t.Parallel()
	s, d := seededStore(t, 50)
	if err := s.Seed(context.Background(), 50); err != nil {
		t.Fatal(err)
	}
	var count int64
	d.Do(context.Background(), func(tx *gorm.DB) error { return tx.Raw(`SELECT count(*) FROM products`).Row().Scan(&count) })
	if count != 50 {
		t.Fatalf("%d products after seeding twice, want 50", count)
	}
	p, err := s.Product(context.Background(), catalog.HotProductID)
	want := catalog.Generate(1)[0]
	if err != nil || p.Name != want.Name || p.PriceCents != want.PriceCents || p.InStock != want.Stock {
		t.Fatalf("hot product %+v %v, want %+v", p, err, want)
	}
}

func BenchmarkStoreSearchText(b *testing.B) {
	s, _ := seededStore(b, catalog.DefaultSize)
	q := products.Query{Text: "laptop", Limit: 20}
	b.ReportAllocs()
	for b.Loop() {
		if hits, err := s.Search(context.Background(), products.ModeText, q, nil, 21); err != nil || len(hits) != 21 {
			b.Fatal(err, len(hits))
		}
	}
}

func BenchmarkStoreSearchTypo(b *testing.B) {
	s, _ := seededStore(b, catalog.DefaultSize)
	q := products.Query{Text: "iphnoe", Limit: 20}
	b.ReportAllocs()
	for b.Loop() {
		if hits, err := s.Search(context.Background(), products.ModeTrigram, q, nil, 21); err != nil || len(hits) == 0 {
			b.Fatal(err)
		}
	}
}

func BenchmarkStoreProduct(b *testing.B) {
	s, _ := seededStore(b, catalog.DefaultSize)
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		i++
		if _, err := s.Product(context.Background(), i%catalog.DefaultSize+1); err != nil {
			b.Fatal(err)
		}
	}
}
