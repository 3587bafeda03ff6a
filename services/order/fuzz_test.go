package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

// FuzzOrderInputs sends what a client can put in an order — the
// Idempotency-Key header and the body — and in a read of its orders — an
// order id, a page's cursor — to the real service, on Postgres, Redis and
// NATS (the user and search services stand in, as in every test here), and
// asks for one of the answers in the routes' table every time: never a 500.
// `make test` runs the seeds below, `make fuzz` looks for more.
func FuzzOrderInputs(f *testing.F) {
	d := startDeps(f)
	// A fuzzer is one client asking thousands of times a second: what the
	// shedder would refuse it is not what is tested here.
	in := start(f, "resilient,-rate_limit,-shedding", d)
	tok := token(f, 7)

	for _, s := range [][4]string{ // Idempotency-Key, body, order id, cursor
		{"k-1", `{"items":[{"product_id":2,"quantity":1}]}`, "7b0c5b38-2b44-4c39-9d0e-7d0f8c0f5d3e", ""},
		{"k-1", `{"items":[{"product_id":3,"quantity":1}]}`, "not-a-uuid", "bm90LWpzb24"},
		{"k-2", `{"items":[{"product_id":999999,"quantity":1}]}`, "%00", "!!"},
		// Two cursors whose id is no order id, "x" and "a\u0000": were 500s.
		{"k-3", `{"items":[{"product_id":1,"quantity":10000}]}`, "", "eyJ0IjoiMjAyMC0wMS0wMVQwMDowMDowMFoiLCJpIjoieCJ9"},
		{"", `{"items":[`, "\xff", "eyJ0IjoiMjAyMC0wMS0wMVQwMDowMDowMFoiLCJpIjoiYVx1MDAwMCJ9"},
		// An id in a spelling Postgres does not read: was a 500.
		{"k 4", `{"items":[],"coupon":"FREE"}`, "urn:uuid:7b0c5b38-2b44-4c39-9d0e-7d0f8c0f5d3e", ""},
		{"k-5", `{"items":[{"product_id":1,"quantity":1}]} {}`, "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, key, body, id, cursor string) {
		check := func(what string, r testkit.Response, want ...int) {
			t.Helper()
			if !slices.Contains(want, r.Status) {
				t.Fatalf("%s: %d, want one of %v: %.300s", what, r.Status, want, r.Raw)
			}
		}
		if sendable(key) {
			check(fmt.Sprintf("POST /v1/orders (key %q) %q", key, body), place(t, in, tok, key, body), 201, 400, 409, 413, 422)
		}
		check("GET /v1/orders/"+id, in.Do(t, http.MethodGet, "/v1/orders/"+url.PathEscape(id), tok, ""), 200, 404)
		check("GET /v1/orders?cursor="+cursor, in.Do(t, http.MethodGet, "/v1/orders?"+url.Values{"cursor": {cursor}}.Encode(), tok, ""), 200, 400)
	})
}

// sendable says whether Go's HTTP client sends v as a header value: it
// refuses control characters other than a tab (net/http's rule), so the
// service never sees them.
func sendable(v string) bool {
	return !strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f })
}
