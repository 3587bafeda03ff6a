package main

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

// Postgres goes away: a product read before is still served, marked stale;
// one never read gets a fast 503 with Retry-After, not a hang or a 500.
func TestPostgresDownServesStaleCopies(t *testing.T) {
	t.Parallel()
	env := testkit.Env(t)
	seedCatalog(t, env)
	proxy := testkit.NewProxy(t, "127.0.0.1:5432", true)
	env["DATABASE_URL"] = strings.Replace(env["DATABASE_URL"], "127.0.0.1:5432", proxy.Addr, 1)
	in := testkit.StartReady(t, run, env)

	if r := in.Do(t, "GET", "/v1/products/5", "", ""); r.Status != 200 || r.Body["stale"] != nil {
		t.Fatalf("before the outage: %d %s", r.Status, r.Raw)
	}
	page := in.Do(t, "GET", "/v1/products?q=laptop&limit=5", "", "")

	proxy.SetUp(false)
	// The fresh copies expire (here: are dropped) while Postgres is away.
	opts, _ := redis.ParseURL(testkit.RedisURL())
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	keys, _ := rdb.Keys(context.Background(), env["REDIS_KEY_PREFIX"]+"*").Result()
	for _, k := range keys {
		if !strings.HasSuffix(k, ":last-good") {
			rdb.Del(context.Background(), k)
		}
	}

	r := in.Do(t, "GET", "/v1/products/5", "", "")
	if r.Status != 200 || r.Body["stale"] != true || r.Body["id"] != 5.0 {
		t.Fatalf("read before: %d %s, want 200 with \"stale\": true", r.Status, r.Raw)
	}
	r = in.Do(t, "GET", "/v1/products?q=laptop&limit=5", "", "")
	if r.Status != 200 || r.Body["stale"] != true || len(r.Body["items"].([]any)) != len(page.Body["items"].([]any)) {
		t.Fatalf("search read before: %d %s", r.Status, r.Raw)
	}
	r = in.Do(t, "GET", "/v1/products/6", "", "")
	if r.Status != 503 || r.Header.Get("Retry-After") == "" ||
		(r.ErrCode() != "database_unavailable" && r.ErrCode() != "dependency_unavailable") {
		t.Fatalf("never read: %d %v %s, want a 503 with Retry-After", r.Status, r.Header, r.Raw)
	}
	// Enough failures open the breaker: Postgres is not even asked any more.
	for range 30 {
		in.Do(t, "GET", "/v1/products/7", "", "")
	}
	if r := in.Do(t, "GET", "/v1/products/8", "", ""); r.ErrCode() != "dependency_unavailable" {
		t.Fatalf("breaker should be open: %s", r.Raw)
	}
	// Liveness does not care; readiness says why.
	if r := in.Do(t, "GET", "/livez", "", ""); r.Status != 200 {
		t.Fatalf("/livez %d", r.Status)
	}
	if r := in.Do(t, "GET", "/readyz", "", ""); r.Status != 503 || !strings.Contains(r.Raw, `"postgres":{"status":"down"`) {
		t.Fatalf("/readyz %d %s", r.Status, r.Raw)
	}
}
