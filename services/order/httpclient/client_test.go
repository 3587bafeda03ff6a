package httpclient

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/web"
)

// A dependency that has answered 429 with Retry-After is not asked again
// before then: the calls in between are refused here, at once, with the
// same 503 the order's client would have got after a round trip. Without
// rate_limit every call goes out and meets the same 429. (The breaker is off
// in both, so that it does not stop the calls itself.)
func TestARateLimitedDependencyIsNotAskedBeforeRetryAfter(t *testing.T) {
	for _, on := range []bool{true, false} {
		name := map[bool]string{true: "rate_limit on", false: "rate_limit off"}[on]
		t.Run(name, func(t *testing.T) {
			var calls atomic.Int64
			dep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				calls.Add(1)
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			}))
			defer dep.Close()
			set, err := fixes.Parse("resilient,-breaker")
			if !on {
				set, err = fixes.Parse("resilient,-breaker,-rate_limit")
			}
			if err != nil {
				t.Fatal(err)
			}
			c := newCaller("search_service", time.Second, fixes.NewBoard(set, slog.New(slog.DiscardHandler)), nil)
			call := func() error {
				var v struct{}
				return c.getJSON(context.Background(), dep.URL+"/v1/products/1", &v)
			}

			for i := range 10 {
				err := call()
				var ol web.Overload
				if !errors.As(err, &ol) || ol.Code() != "dependency_unavailable" || ol.RetryAfter() < time.Second {
					t.Fatalf("call %d: %v; want a dependency_unavailable overload with Retry-After ≥ 1 s", i, err)
				}
			}
			want := map[bool]int64{true: 1, false: 10}[on]
			if n := calls.Load(); n != want {
				t.Fatalf("the dependency was called %d times for 10 calls after its 429; want %d", n, want)
			}
			if !on {
				return
			}
			time.Sleep(1100 * time.Millisecond) // its Retry-After has passed: ask again
			_ = call()
			if n := calls.Load(); n != 2 {
				t.Fatalf("after Retry-After: the dependency was called %d times in all; want 2", n)
			}
		})
	}
}
