package resilience_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

// benchMiddleware measures what one middleware adds to a request through Gin,
// against the same engine without it (BenchmarkMiddleware/none).
func benchMiddleware(b *testing.B, mw ...gin.HandlerFunc) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(mw...)
	r.GET("/", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d", w.Code)
		}
	}
}

func BenchmarkMiddleware(b *testing.B) {
	on := fixes.NewBoard(fixes.Resilient, quiet)
	b.Run("none", func(b *testing.B) { benchMiddleware(b) })
	b.Run("deadline", func(b *testing.B) { benchMiddleware(b, resilience.Deadline(time.Second, on)) })
	b.Run("shed", func(b *testing.B) {
		benchMiddleware(b, resilience.Shed(resilience.NewShedder(resilience.ShedSettings{}, nil), resilience.InternalIsCritical("/internal/"), on, quiet))
	})
	b.Run("rate_limit_local", func(b *testing.B) {
		benchMiddleware(b, resilience.RateLimit(resilience.NewLocalLimiter(1e9, 1e9, 1000), resilience.ByClientIP("b"), on, quiet))
	})
	b.Run("rate_limit_redis", func(b *testing.B) {
		rdb, prefix := testkit.Redis(b)
		benchMiddleware(b, resilience.RateLimit(resilience.NewRedisLimiter(rdb, prefix, 1e9, 1e9, nil), resilience.ByClientIP("b"), on, quiet))
	})
}

func BenchmarkBreaker(b *testing.B) {
	br := resilience.NewBreaker[int](resilience.BreakerSettings{Name: "bench"}, fixes.NewBoard(fixes.Resilient, quiet), nil)
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Do(ctx, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkShedderAcquireRelease(b *testing.B) {
	sh := resilience.NewShedder(resilience.ShedSettings{}, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := sh.Acquire(ctx, resilience.Sheddable)
			if err == nil {
				p.Release()
			}
		}
	})
}

func BenchmarkFallbackHit(b *testing.B) {
	rdb, prefix := testkit.Redis(b)
	f := resilience.NewFallback[order](cache.NewStore(rdb, prefix), time.Minute, time.Hour, fixes.NewBoard(fixes.Resilient, quiet), nil)
	ctx := context.Background()
	load := func(context.Context) (order, error) { return order{ID: "o1"}, nil }
	_, _, _ = f.Get(ctx, "k", load)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.Get(ctx, "k", load); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFallbackMiss is a read that misses the cache and loads, with and
// without a patience: what the patience's shared background load costs a
// miss when the database is quick (each iteration also invalidates the key).
func BenchmarkFallbackMiss(b *testing.B) {
	rdb, prefix := testkit.Redis(b)
	board := fixes.NewBoard(fixes.Resilient, quiet)
	load := func(context.Context) (order, error) { return order{ID: "o1"}, nil }
	for _, patience := range []time.Duration{0, 100 * time.Millisecond} {
		b.Run("patience="+patience.String(), func(b *testing.B) {
			f := resilience.NewFallback[order](cache.NewStore(rdb, prefix), time.Minute, time.Hour, board, nil).WithPatience(patience)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_ = f.Invalidate(ctx, "k")
				if _, stale, err := f.Get(ctx, "k", load); err != nil || stale {
					b.Fatal(stale, err)
				}
			}
		})
	}
}

// BenchmarkOutside is what marking a dependency call costs a request: inside
// a request the door admitted (a clock, and a slot that a long call would
// lend back) and without the door.
func BenchmarkOutside(b *testing.B) {
	b.Run("admitted", func(b *testing.B) {
		sh := resilience.NewShedder(resilience.ShedSettings{}, nil)
		gin.SetMode(gin.ReleaseMode)
		r := gin.New()
		r.Use(resilience.Shed(sh, resilience.InternalIsCritical("/internal/"), fixes.NewBoard(fixes.Resilient, quiet), quiet))
		r.GET("/", func(c *gin.Context) {
			ctx := c.Request.Context()
			b.ReportAllocs()
			for b.Loop() {
				resilience.Outside(ctx)()
			}
		})
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	})
	b.Run("no door", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			resilience.Outside(ctx)()
		}
	})
}
