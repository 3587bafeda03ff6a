package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

const seeded = 2000

// start seeds a fresh catalog of 2000 products and runs the service on it.
func start(t *testing.T) *testkit.Instance {
	t.Helper()
	env := testkit.Env(t)
	seedCatalog(t, env)
	return testkit.StartReady(t, run, env)
}

func seedCatalog(t testing.TB, env map[string]string) {
	t.Helper()
	var out testkit.SyncBuffer
	if err := run(context.Background(), []string{"search", "seed", fmt.Sprint(seeded)}, testkit.Getenv(env), nil, &out, &out); err != nil {
		t.Fatalf("seed: %v\n%s", err, out.String())
	}
}

// search runs a query and returns the ids found and the next cursor.
func search(t *testing.T, in *testkit.Instance, params url.Values) (ids []int64, items []map[string]any, next string) {
	t.Helper()
	r := in.Do(t, "GET", "/v1/products?"+params.Encode(), "", "")
	if r.Status != http.StatusOK {
		t.Fatalf("search %s: %d %s", params.Encode(), r.Status, r.Raw)
	}
	for _, it := range r.Body["items"].([]any) {
		m := it.(map[string]any)
		items = append(items, m)
		ids = append(ids, int64(m["id"].(float64)))
	}
	next, _ = r.Body["next_cursor"].(string)
	return ids, items, next
}
