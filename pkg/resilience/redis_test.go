package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/testkit"
	"github.com/stampede-shop/stampede/pkg/web"
)

// Two replicas, one Redis: the client's budget is one budget.
func TestRedisLimiterSharesOneBudgetAcrossReplicas(t *testing.T) {
	t.Parallel()
	rdb, prefix := testkit.Redis(t)
	a := resilience.NewRedisLimiter(rdb, prefix, 10, 10, nil)
	b := resilience.NewRedisLimiter(rdb, prefix, 10, 10, nil)
	ctx := context.Background()
	allowed := 0
	start := time.Now()
	for i := range 40 {
		l := a
		if i%2 == 1 {
			l = b
		}
		d, err := l.Allow(ctx, "client-1")
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowed++
		}
	}
	// GCRA runs on Redis's clock, which the test cannot stop: allow the
	// refill at 10/s during the loop, plus one.
	most := 10 + int(time.Since(start).Seconds()*10) + 1
	if allowed < 10 || allowed > most {
		t.Fatalf("%d allowed across two replicas, want 10..%d (two separate budgets would allow 20)", allowed, most)
	}
	// (redis_rate's Lua floors a float: a fresh key may report 8 left, not 9.)
	if d, _ := a.Allow(ctx, "client-2"); !d.Allowed || d.Remaining < 8 {
		t.Fatalf("another client has its own budget: %+v", d)
	}
}

func TestRedisLimiterFallsBackToLocalWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	proxy := testkit.NewProxy(t, "127.0.0.1:6379", false) // Redis unreachable
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	l := resilience.NewRedisLimiter(rdb, testkit.Name("rl:"), 5, 5, nil)
	ctx := context.Background()
	allowed := 0
	for range 20 {
		d, err := l.Allow(ctx, "client")
		if err != nil {
			t.Fatalf("a Redis outage must not surface as a limiter error: %v", err)
		}
		if d.Allowed {
			allowed++
		}
	}
	// The local bucket still limits (5, plus refill over the loop): not everything passes.
	if allowed < 5 || allowed >= 20 {
		t.Fatalf("%d of 20 allowed with Redis down, want the local budget (about 5)", allowed)
	}
	// Redis back: the shared limiter answers again.
	proxy.SetUp(true)
	d, err := l.Allow(ctx, "fresh-client")
	if err != nil || !d.Allowed || d.Remaining < 3 {
		t.Fatalf("after Redis is back: %+v %v", d, err)
	}
}

type order struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func TestFallbackServesTheLastGoodCopyMarkedStale(t *testing.T) {
	t.Parallel()
	rdb, prefix := testkit.Redis(t)
	board := fixes.NewBoard(fixes.Resilient, quiet)
	f := resilience.NewFallback[order](cache.NewStore(rdb, prefix), time.Minute, time.Hour, board, nil)
	ctx := context.Background()

	dbUp := true
	loads := 0
	load := func(context.Context) (order, error) {
		loads++
		if !dbUp {
			return order{}, fmt.Errorf("query: %w", errDown)
		}
		return order{ID: "o1", Status: "created"}, nil
	}

	v, stale, err := f.Get(ctx, "order:o1", load)
	if err != nil || stale || v.Status != "created" || loads != 1 {
		t.Fatalf("first read: %+v stale=%v err=%v loads=%d", v, stale, err, loads)
	}
	v, stale, _ = f.Get(ctx, "order:o1", load)
	if stale || loads != 1 {
		t.Fatalf("second read should be a fresh cache hit: stale=%v loads=%d", stale, loads)
	}

	// The fresh copy is gone (a write invalidated it) and the database is down.
	_ = f.Invalidate(ctx, "order:o1")
	dbUp = false
	v, stale, err = f.Get(ctx, "order:o1", load)
	if err != nil || !stale || v.ID != "o1" {
		t.Fatalf("database down: %+v stale=%v err=%v, want the last good copy marked stale", v, stale, err)
	}
	// Never read before: nothing to fall back on, the error comes through.
	if _, _, err := f.Get(ctx, "order:o2", load); !errors.Is(err, errDown) {
		t.Fatalf("never read: %v, want the load error", err)
	}
	// A client error is not papered over with an old copy.
	notFound := web.NewError(http.StatusNotFound, "not_found", "gone")
	if _, stale, err := f.Get(ctx, "order:o1", func(context.Context) (order, error) { return order{}, notFound }); !errors.Is(err, notFound) || stale {
		t.Fatalf("404: stale=%v err=%v", stale, err)
	}

	// Fix off at run time: the failure comes through as is.
	board.Replace(fixes.Naive, "test")
	if _, stale, err := f.Get(ctx, "order:o1", load); !errors.Is(err, errDown) || stale {
		t.Fatalf("cache_fallback off: stale=%v err=%v, want the error", stale, err)
	}
	if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); !strings.Contains(fmt.Sprint(keys), "order:o1:last-good") {
		t.Fatalf("last good copy not under the prefix: %v", keys)
	}
}
