package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

// Cached reads through the whole HTTP stack: middleware, the Redis limiter,
// the cache. The uncached costs are the store benchmarks in package postgres.
func benchGet(b *testing.B, in *testkit.Instance, path func(i int) string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		resp, err := client.Get(in.API + path(i))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func benchInstance(b *testing.B) *testkit.Instance {
	env := testkit.Env(b)
	env["LOG_LEVEL"] = "info" // request lines are debug; "listening" is info
	env["SEARCH_RATE_PER_SECOND"] = "1000000"
	var out testkit.SyncBuffer
	if err := run(context.Background(), []string{"search", "seed", "10000"}, testkit.Getenv(env), nil, &out, &out); err != nil {
		b.Fatal(err)
	}
	return testkit.StartReady(b, run, env)
}

func BenchmarkHTTPProductCached(b *testing.B) {
	in := benchInstance(b)
	benchGet(b, in, func(int) string { return "/v1/products/42" })
}

func BenchmarkHTTPSearchCached(b *testing.B) {
	in := benchInstance(b)
	benchGet(b, in, func(int) string { return "/v1/products?q=laptop&limit=20" })
}

func BenchmarkHTTPProductUncached(b *testing.B) {
	in := benchInstance(b)
	// Every id once: each read misses the cache and goes to Postgres.
	benchGet(b, in, func(i int) string { return fmt.Sprintf("/v1/products/%d", i%10000+1) })
}
