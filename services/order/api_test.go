package main

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stampede-shop/stampede/pkg/auth"
)

const oneHot = `{"items":[{"product_id":1,"quantity":1}]}`

func TestIdempotency(t *testing.T) {
	t.Parallel()
	in := start(t, "resilient", startDeps(t))
	tok := token(t, 7)

	first := place(t, in, tok, "k-1", `{"items":[{"product_id":2,"quantity":2},{"product_id":1,"quantity":1}]}`)
	if first.Status != 201 || first.Body["status"] != "created" || first.Body["total_cents"] != float64(2*79_900+99_900) {
		t.Fatalf("first: %d %s", first.Status, first.Raw)
	}
	// The same key and body (lines in another order): the same answer, byte for byte.
	again := place(t, in, tok, "k-1", `{"items":[{"product_id":1,"quantity":1},{"product_id":2,"quantity":2}]}`)
	if again.Status != 201 || again.Raw != first.Raw || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s, want the first answer %s", again.Status, again.Raw, first.Raw)
	}
	// The same key, another body: a client bug.
	if r := place(t, in, tok, "k-1", oneHot); r.Status != 422 || r.ErrCode() != "idempotency_key_reused" {
		t.Fatalf("other body: %d %s", r.Status, r.Raw)
	}
	// Keys are per user: another user's "k-1" is another order.
	if r := place(t, in, token(t, 8), "k-1", oneHot); r.Status != 201 || r.Body["id"] == first.Body["id"] {
		t.Fatalf("other user, same key: %d %s", r.Status, r.Raw)
	}
	if n := query(t, in, `SELECT count(*) FROM orders`); n != 2 {
		t.Fatalf("%d orders, want 2", n)
	}

	// Twenty copies of one request at once: exactly one order.
	var wg sync.WaitGroup
	ids := make([]string, 20)
	for i := range ids {
		wg.Go(func() {
			// Those that find the first still being placed are told to
			// come back (409 request_in_progress), and do.
			r := placeUntilAnswered(t, in, tok, "k-concurrent", oneHot)
			if r.Status != 201 {
				t.Errorf("duplicate %d: %d %s", i, r.Status, r.Raw)
				return
			}
			ids[i], _ = r.Body["id"].(string)
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("concurrent duplicates got different orders: %v", ids)
		}
	}
	if n := query(t, in, `SELECT count(*) FROM orders`); n != 3 {
		t.Fatalf("%d orders, want 3", n)
	}
}

func TestOnlyTheOwnerSeesAnOrder(t *testing.T) {
	t.Parallel()
	in := start(t, "resilient", startDeps(t))
	alice, bob := token(t, 1), token(t, 2)
	r := place(t, in, alice, "a-1", oneHot)
	id := r.Body["id"].(string)

	if r := in.Do(t, "GET", "/v1/orders/"+id, alice, ""); r.Status != 200 || r.Body["id"] != id || len(r.Body["items"].([]any)) != 1 {
		t.Fatalf("owner: %d %s", r.Status, r.Raw)
	}
	if r := in.Do(t, "GET", "/v1/orders/"+id, bob, ""); r.Status != 404 || r.ErrCode() != "not_found" {
		t.Fatalf("another user: %d %s, want 404", r.Status, r.Raw)
	}
	if r := in.Do(t, "GET", "/v1/orders", bob, ""); r.Status != 200 || len(r.Body["items"].([]any)) != 0 {
		t.Fatalf("another user's list: %s", r.Raw)
	}
	forged, _, _ := auth.NewTokens("not-the-secret-not-the-secret-xx", 3600e9).Issue(1)
	for name, tok := range map[string]string{"no token": "", "forged": forged, "garbage": "x.y.z"} {
		if r := in.Do(t, "GET", "/v1/orders/"+id, tok, ""); r.Status != 401 {
			t.Errorf("%s: GET %d", name, r.Status)
		}
		if r := place(t, in, tok, "x-1", oneHot); r.Status != 401 || r.ErrCode() != "unauthorized" {
			t.Errorf("%s: POST %d %s", name, r.Status, r.Raw)
		}
	}
}

func TestListIsTheCallersOrdersNewestFirst(t *testing.T) {
	t.Parallel()
	in := start(t, "resilient", startDeps(t))
	tok := token(t, 3)
	var placed []string
	for i := range 5 {
		r := place(t, in, tok, fmt.Sprint("l-", i), fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1}]}`, i+4))
		placed = append([]string{r.Body["id"].(string)}, placed...)
	}
	place(t, in, token(t, 4), "other", oneHot)
	var got []string
	for cursor := ""; ; {
		r := in.Do(t, "GET", "/v1/orders?limit=2&cursor="+cursor, tok, "")
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Raw)
		}
		for _, it := range r.Body["items"].([]any) {
			got = append(got, it.(map[string]any)["id"].(string))
		}
		next, _ := r.Body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if strings.Join(got, ",") != strings.Join(placed, ",") {
		t.Fatalf("listed %v, want %v", got, placed)
	}
}

func TestBadOrdersAreClear4xx(t *testing.T) {
	t.Parallel()
	in := start(t, "resilient", startDeps(t))
	tok := token(t, 9)
	long := strings.Repeat("k", 256)
	for name, tt := range map[string]struct {
		key, body string
		status    int
		code      string
	}{
		"missing key":        {"", oneHot, 400, "invalid"},
		"key over 255":       {long, oneHot, 400, "invalid"},
		"key with spaces":    {"a b", oneHot, 400, "invalid"},
		"unknown product":    {"b-1", `{"items":[{"product_id":999999,"quantity":1}]}`, 400, "unknown_product"},
		"quantity 0":         {"b-2", `{"items":[{"product_id":1,"quantity":0}]}`, 400, "invalid"},
		"quantity 10000":     {"b-3", `{"items":[{"product_id":1,"quantity":10000}]}`, 400, "invalid"},
		"empty items":        {"b-4", `{"items":[]}`, 400, "invalid"},
		"no items":           {"b-5", `{}`, 400, "invalid"},
		"duplicated items":   {"b-6", `{"items":[{"product_id":1,"quantity":1},{"product_id":1,"quantity":2}]}`, 400, "invalid"},
		"negative product":   {"b-7", `{"items":[{"product_id":-1,"quantity":1}]}`, 400, "invalid"},
		"malformed JSON":     {"b-8", `{"items":[`, 400, "invalid_json"},
		"wrong type":         {"b-9", `{"items":"all"}`, 400, "invalid_json"},
		"unknown field":      {"b-10", `{"items":[],"coupon":"FREE"}`, 400, "invalid_json"},
		"huge body":          {"b-11", `{"items":[` + strings.Repeat(`{"product_id":1,"quantity":1},`, 5000) + `]}`, 413, "body_too_large"},
		"more than 20 items": {"b-12", `{"items":[` + strings.TrimSuffix(strings.Repeat(`{"product_id":1,"quantity":1},`, 21), ",") + `]}`, 400, "invalid"},
	} {
		r := place(t, in, tok, tt.key, tt.body)
		if r.Status != tt.status || r.ErrCode() != tt.code {
			t.Errorf("%s: %d %q, want %d %q: %.200s", name, r.Status, r.ErrCode(), tt.status, tt.code, r.Raw)
		}
	}
	for path, status := range map[string]int{"/v1/orders/not-a-uuid": 404, "/v1/orders/7b0c5b38-2b44-4c39-9d0e-7d0f8c0f5d3e": 404,
		"/v1/orders?limit=0": 400, "/v1/orders?limit=101": 400, "/v1/orders?cursor=bm90LWpzb24": 400, "/v1/orders?cursor=!!": 400,
		"/v1/orders?cursor=eyJ0IjoiMjAyMC0wMS0wMVQwMDowMDowMFoiLCJpIjoieCJ9": 400, // {"t":"2020-01-01T00:00:00Z","i":"x"}: was a 500
		// An id in a spelling Postgres does not read: were 500s.
		"/v1/orders/urn:uuid:7b0c5b38-2b44-4c39-9d0e-7d0f8c0f5d3e": 404,
		"/v1/orders?cursor=" + base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2020-01-01T00:00:00Z","i":"urn:uuid:7b0c5b38-2b44-4c39-9d0e-7d0f8c0f5d3e"}`)): 400,
	} {
		if r := in.Do(t, "GET", path, tok, ""); r.Status != status || r.Body["error"] == nil {
			t.Errorf("%s: %d %s", path, r.Status, r.Raw)
		}
	}
	if n := query(t, in, `SELECT count(*) FROM orders`); n != 0 {
		t.Fatalf("bad requests created %d orders", n)
	}
}

// A user service that sheds (503) or limits (429) us is a dependency that
// is unavailable for now: the order gets a 503 with Retry-After, in both
// forms — never a 500, which would mean a bug.
func TestADependencyRefusingIsA503(t *testing.T) {
	for _, fixesValue := range []string{"naive", "resilient"} {
		t.Run(fixesValue, func(t *testing.T) {
			t.Parallel()
			d := startDeps(t)
			in := start(t, fixesValue, d)
			for _, status := range []int64{503, 429, 500} {
				d.userStatus.Store(status)
				// A user id never looked up before: no cached answer to fall back on.
				r := place(t, in, token(t, 900+status), fmt.Sprintf("dep-%d", status), oneHot)
				if r.Status != 503 || r.Header.Get("Retry-After") == "" {
					t.Fatalf("user service answering %d: got %d %s, want 503 with Retry-After", status, r.Status, r.Raw)
				}
				if code := r.ErrCode(); code != "dependency_unavailable" && code != "breaker_open" {
					t.Fatalf("user service answering %d: code %q", status, code)
				}
			}
		})
	}
}

// Once the gate knows a SKU is sold out, a new order for it is refused before
// any write — but a retry of an order that succeeded must still get its 201,
// not a 409: the key is read before the gate's answer is given.
func TestSoldOutStillReplaysWhatSucceeded(t *testing.T) {
	t.Parallel()
	in := start(t, "resilient", startDeps(t))
	query(t, in, `UPDATE inventory SET stock = 1 WHERE product_id = 21 RETURNING 0`)
	body := `{"items":[{"product_id":21,"quantity":1}]}`
	tok := token(t, 3)
	first := place(t, in, tok, "last-one", body)
	if first.Status != 201 {
		t.Fatalf("the last unit: %d %s", first.Status, first.Raw)
	}
	for i := range 3 { // sold out now, and the gate knows it
		if r := place(t, in, token(t, int64(10+i)), fmt.Sprint("too-late-", i), body); r.Status != 409 || r.ErrCode() != "sold_out" {
			t.Fatalf("after the last unit: %d %s", r.Status, r.Raw)
		}
	}
	again := place(t, in, tok, "last-one", body)
	if again.Status != 201 || again.Raw != first.Raw || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry of the order that got the last unit: %d %s, want the first answer", again.Status, again.Raw)
	}
	if r := place(t, in, tok, "last-one", `{"items":[{"product_id":21,"quantity":2}]}`); r.Status != 422 {
		t.Fatalf("same key, other body, sold out: %d %s, want 422", r.Status, r.Raw)
	}
	if n := query(t, in, `SELECT count(*) FROM idempotency_keys`); n != 1 {
		t.Fatalf("%d idempotency keys, want only the order's", n)
	}
}

// Housekeeping is wired (the sweeper itself is tested in pkg/db, the sweeps in
// postgres): sent events and expired idempotency keys are swept.
func TestHousekeepingSweepsItsTables(t *testing.T) {
	t.Parallel()
	in := start(t, "resilient", startDeps(t))
	if got, want := in.SweptTables(t), []string{"idempotency_keys", "outbox"}; !slices.Equal(got, want) {
		t.Fatalf("swept tables %v, want %v", got, want)
	}
}
