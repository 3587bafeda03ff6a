package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

// FuzzSearchParameters sends what a client can put in the search's query
// string to the real service, on Postgres and Redis, and asks for a 200 or a
// clear 400 every time: never a 500. `make test` runs the seeds below, `make
// fuzz` looks for more.
func FuzzSearchParameters(f *testing.F) {
	env := testkit.Env(f)
	// A fuzzer is one client asking thousands of times a second: past the
	// rate limit, every answer would be a 429 and nothing else tested.
	env["FIXES"] = "resilient,-rate_limit"
	seedCatalog(f, env)
	in := testkit.StartReady(f, run, env)

	for _, s := range [][6]string{ // q, category, limit, min_price, max_price, cursor
		{"laptop", "", "", "", "", ""},
		{"iphnoe", "phones", "3", "", "", ""},
		{"", "watches", "5", "10000", "20000", ""},
		{"lap\x00top", "", "", "", "", ""}, // was a 500: Postgres refuses NUL in text
		{"\xff\xfe", "", "", "", "", ""},   // was a 500: not UTF-8
		{"café -tea \"exact phrase\" or", "", "100", "0", "", ""},
		{"", "spaceships", "0", "-1", "x", "abc.def"},
		{"", "", "", "9223372036854775807", "9223372036854775808", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, q, category, limit, minPrice, maxPrice, cursor string) {
		v := url.Values{}
		for name, value := range map[string]string{"q": q, "category": category, "limit": limit,
			"min_price": minPrice, "max_price": maxPrice, "cursor": cursor} {
			if value != "" {
				v.Set(name, value)
			}
		}
		r := in.Do(t, http.MethodGet, "/v1/products?"+v.Encode(), "", "")
		switch r.Status {
		case http.StatusOK:
			if _, ok := r.Body["items"].([]any); !ok {
				t.Fatalf("%s: 200 without items: %.300s", v.Encode(), r.Raw)
			}
		case http.StatusBadRequest:
			if r.ErrCode() != "invalid" || r.Body["error"].(map[string]any)["fields"] == nil {
				t.Fatalf("%s: 400 without the problems by field: %.300s", v.Encode(), r.Raw)
			}
		default:
			t.Fatalf("%s: %d, want 200 or 400: %.300s", v.Encode(), r.Status, r.Raw)
		}
	})
}
