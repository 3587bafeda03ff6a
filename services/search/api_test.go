package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

func TestExactNameRanksFirst(t *testing.T) {
	t.Parallel()
	in := start(t)
	// Hundreds of products have "laptop" in their name and their description,
	// which ts_rank rates above a bare name; the product called exactly
	// "Laptop" must still come first.
	conn, err := pgx.Connect(context.Background(), in.Env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO products (id, sku, name, description, category, price_cents, in_stock)
		VALUES (900001, 'EXACT-1', 'Laptop', 'A computer.', 'laptops', 50000, 5)`); err != nil {
		t.Fatal(err)
	}
	ids, _, next := search(t, in, url.Values{"q": {"laptop"}, "limit": {"20"}})
	if len(ids) != 20 || next == "" || ids[0] != 900001 {
		t.Fatalf("got %v (more: %v), want 900001 first of many", ids, next != "")
	}
}

func TestTypoTolerance(t *testing.T) {
	t.Parallel()
	in := start(t)
	for _, q := range []string{"iphnoe", "iphone", "iPhone 17"} {
		ids, _, _ := search(t, in, url.Values{"q": {q}, "limit": {"5"}})
		if len(ids) == 0 || ids[0] != catalog.HotProductID {
			t.Errorf("%q: got %v, want the iPhone (id 1) first", q, ids)
		}
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	in := start(t)
	params := url.Values{"category": {"watches"}, "min_price": {"10000"}, "max_price": {"20000"}, "limit": {"100"}}
	_, items, _ := search(t, in, params)
	want := 0
	for _, p := range catalog.Generate(seeded) {
		if p.Category == "watches" && p.PriceCents >= 10000 && p.PriceCents <= 20000 {
			want++
		}
	}
	if len(items) != min(want, 100) || want == 0 {
		t.Fatalf("%d items, want %d", len(items), want)
	}
	for _, it := range items {
		price := it["price_cents"].(float64)
		if it["category"] != "watches" || price < 10000 || price > 20000 {
			t.Fatalf("item outside the filters: %v", it)
		}
	}
	// With text too.
	_, items, _ = search(t, in, url.Values{"q": {"chronograph"}, "category": {"watches"}, "max_price": {"30000"}})
	for _, it := range items {
		if it["category"] != "watches" || it["price_cents"].(float64) > 30000 || !strings.Contains(strings.ToLower(it["name"].(string)), "chronograph") {
			t.Fatalf("text + filters: %v", it)
		}
	}
}

// Keyset pagination: rows inserted between pages, before and after the
// cursor's position, must not make a page skip or repeat a row.
func TestPaginationNeitherSkipsNorRepeatsWhileRowsAreInserted(t *testing.T) {
	t.Parallel()
	in := start(t)
	conn, err := pgx.Connect(context.Background(), in.Env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	for _, params := range []url.Values{
		{"category": {"books"}, "limit": {"7"}}, // list mode: keyset on id
		{"q": {"laptop"}, "limit": {"7"}},       // text mode: keyset on (rank, id)
	} {
		t.Run(params.Encode(), func(t *testing.T) {
			wantIDs := map[int64]bool{}
			var cursorlessAll []int64
			for next := ""; ; {
				p := url.Values{}
				for k, v := range params {
					p[k] = v
				}
				p.Set("limit", "100")
				if next != "" {
					p.Set("cursor", next)
				}
				var ids []int64
				ids, _, next = search(t, in, p)
				cursorlessAll = append(cursorlessAll, ids...)
				if next == "" {
					break
				}
			}
			for _, id := range cursorlessAll {
				wantIDs[id] = true
			}

			seen := map[int64]int{}
			newID := int64(100_000 + len(params.Encode())*1000)
			for next, page := "", 0; ; page++ {
				p := url.Values{}
				for k, v := range params {
					p[k] = v
				}
				if next != "" {
					p.Set("cursor", next)
				}
				var ids []int64
				ids, _, next = search(t, in, p)
				for _, id := range ids {
					seen[id]++
				}
				// Between pages, insert rows that match: some better ranked,
				// some worse, some with lower and higher ids.
				for i := range 3 {
					newID++
					name := fmt.Sprintf("Inserted Laptop %d laptop laptop", newID)
					if i == 1 {
						name = fmt.Sprintf("Inserted gadget %d with a laptop sleeve", newID)
					}
					_, err := conn.Exec(context.Background(), `INSERT INTO products (id, sku, name, description, category, price_cents, in_stock)
						VALUES ($1, $2, $3, 'laptop', 'books', 1000, 1)`, newID, fmt.Sprint("NEW-", newID), name)
					if err != nil {
						t.Fatal(err)
					}
				}
				if next == "" || page > 200 {
					break
				}
			}
			for id := range wantIDs {
				if seen[id] != 1 {
					t.Fatalf("row %d seen %d times while paging (want exactly once)", id, seen[id])
				}
			}
			for id, n := range seen {
				if n > 1 {
					t.Fatalf("row %d repeated %d times", id, n)
				}
			}
		})
	}
}

func TestBadQueriesAreClear400s(t *testing.T) {
	t.Parallel()
	in := start(t)
	_, _, next := search(t, in, url.Values{"q": {"laptop"}, "limit": {"2"}})
	for name, tt := range map[string]struct{ query, field string }{
		"limit=0":           {"limit=0", "limit"},
		"limit=1000":        {"limit=1000", "limit"},
		"min over max":      {"min_price=500&max_price=100", "min_price"},
		"garbage cursor":    {"cursor=abc", "cursor"},
		"tampered cursor":   {"q=laptop&cursor=" + next[:len(next)-3] + "AAA", "cursor"},
		"another's cursor":  {"q=phone&cursor=" + next, "cursor"},
		"unknown category":  {"category=spaceships", "category"},
		"negative price":    {"min_price=-5", "min_price"},
		"non-numeric limit": {"limit=many", "limit"},
	} {
		r := in.Do(t, "GET", "/v1/products?"+tt.query, "", "")
		fields, _ := r.Body["error"].(map[string]any)["fields"].(map[string]any)
		if r.Status != 400 || r.ErrCode() != "invalid" || fields[tt.field] == nil {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	for path, status := range map[string]int{"/v1/products/abc": 400, "/v1/products/0": 400, "/v1/products/999999": 404} {
		if r := in.Do(t, "GET", path, "", ""); r.Status != status || r.Body["error"] == nil {
			t.Errorf("%s: %d %s", path, r.Status, r.Raw)
		}
	}
}

func TestSameOrderEventTwiceChangesSoldOnce(t *testing.T) {
	t.Parallel()
	in := start(t)
	js, _ := testkit.NATS(t)
	names := eventsNames(in)
	publish := func(msgID, eventID string, qty int) {
		t.Helper()
		publishOrder(t, js, names, msgID, eventID, qty)
	}
	publish("e1", "e1", 2)
	publish("e1-again", "e1", 2) // redelivered past JetStream's de-duplication
	publish("e2", "e2", 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := in.Do(t, "GET", "/v1/products/1", "", "")
		if r.Body["sold"] == 3.0 && r.Body["in_stock"] == 97.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("product 1: %s, want sold 3 and in_stock 97", r.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if r := in.Do(t, "GET", "/v1/products/1", "", ""); r.Body["sold"] != 3.0 {
		t.Fatalf("sold changed again: %s", r.Raw)
	}
}

// Housekeeping is wired (the sweeper itself is tested in pkg/db): the records
// of handled events are swept once the stream has forgotten them.
func TestHousekeepingSweepsItsTables(t *testing.T) {
	t.Parallel()
	in := start(t)
	if got := in.SweptTables(t); !slices.Equal(got, []string{"processed_events"}) {
		t.Fatalf("swept tables %v, want [processed_events]", got)
	}
}

// The shop's own services read products on /internal with a budget of their
// own: a browser over its budget does not take the order service's, and the
// order service's is bounded too.
func TestInternalCallersHaveABudgetOfTheirOwn(t *testing.T) {
	t.Parallel()
	env := testkit.Env(t)
	env["SEARCH_RATE_PER_SECOND"] = "1"
	env["SEARCH_INTERNAL_RATE_PER_SECOND"] = "3"
	seedCatalog(t, env)
	in := testkit.StartReady(t, run, env)

	statuses := func(paths ...string) []int {
		var got []int
		for _, path := range paths {
			got = append(got, in.Do(t, "GET", path, "", "").Status)
		}
		return got
	}
	if got, want := statuses("/v1/products/1", "/v1/products/2"), []int{200, 429}; !slices.Equal(got, want) {
		t.Fatalf("public product reads at a budget of 1/s: %v, want %v", got, want)
	}
	got := statuses("/internal/v1/products/1", "/internal/v1/products/2", "/internal/v1/products/987654", "/internal/v1/products/3")
	if want := []int{200, 200, http.StatusNotFound, 429}; !slices.Equal(got, want) {
		t.Fatalf("internal product reads at a budget of 3/s, the public one spent: %v, want %v", got, want)
	}
}
