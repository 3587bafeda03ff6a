package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
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
	for _, patience := range []time.Duration{0, time.Second} {
		t.Run(fmt.Sprintf("patience %v", patience), func(t *testing.T) {
			t.Parallel()
			testFallbackServesTheLastGoodCopy(t, patience)
		})
	}
}

func testFallbackServesTheLastGoodCopy(t *testing.T, patience time.Duration) {
	rdb, prefix := testkit.Redis(t)
	board := fixes.NewBoard(fixes.Resilient, quiet)
	f := resilience.NewFallback[order](cache.NewStore(rdb, prefix), time.Minute, time.Hour, board, nil).WithPatience(patience)
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

// A value kept as it is written is read without a load, and served stale when
// loads fail, though it was never read; with the fix off nothing is kept.
func TestFallbackKeepsAValueWithoutALoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	failing := func(context.Context) (order, error) { return order{}, fmt.Errorf("query: %w", errDown) }
	for _, c := range []struct {
		fixes string
		kept  bool
	}{
		{"resilient", true},
		{"resilient,-cache_fallback", false},
	} {
		set, err := fixes.Parse(c.fixes)
		if err != nil {
			t.Fatal(err)
		}
		rdb, prefix := testkit.Redis(t)
		board := fixes.NewBoard(set, quiet)
		f := resilience.NewFallback[order](cache.NewStore(rdb, prefix), time.Minute, time.Hour, board, nil)
		f.Keep(ctx, "order:o1", order{ID: "o1", Status: "created"})
		loads := 0
		v, stale, err := f.Get(ctx, "order:o1", func(context.Context) (order, error) { loads++; return order{ID: "o1"}, nil })
		if got := loads == 0 && v.Status == "created" && !stale && err == nil; got != c.kept {
			t.Fatalf("%v: read after Keep: %+v stale=%v err=%v loads=%d; want it from the cache = %v", c.fixes, v, stale, err, loads, c.kept)
		}
		if !c.kept {
			continue
		}
		_ = f.Invalidate(ctx, "order:o1")
		if v, stale, err := f.Get(ctx, "order:o1", failing); err != nil || !stale || v.ID != "o1" {
			t.Fatalf("the database down: %+v stale=%v err=%v, want the kept copy, stale", v, stale, err)
		}
	}
}

// With a patience, a slow load is not waited for when a last good copy can
// answer instead: the copy comes back stale at once, while the load finishes
// in the background (not cut: under a slow database a cut query costs its
// connection) and refreshes the cache. Readers of one key share that load.
// With nothing to fall back on, no patience, or the fix off, the slow load
// is waited for.
func TestFallbackServesTheCopyWhileASlowLoadFinishes(t *testing.T) {
	t.Parallel()
	rdb, prefix := testkit.Redis(t)
	board := fixes.NewBoard(fixes.Resilient, quiet)
	store := cache.NewStore(rdb, prefix)
	patient := resilience.NewFallback[order](store, time.Minute, time.Hour, board, nil).WithPatience(20 * time.Millisecond)
	ctx := context.Background()

	// slow answers "paid" when released, unless its context ends first.
	var loads, cut atomic.Int32
	release := make(chan struct{}, 1) // a release no load takes must not block the test
	finished := make(chan struct{}, 10)
	slow := func(ctx context.Context) (order, error) {
		loads.Add(1)
		defer func() { finished <- struct{}{} }()
		select {
		case <-release:
			return order{ID: "o1", Status: "paid"}, nil
		case <-ctx.Done():
			cut.Add(1)
			return order{}, ctx.Err()
		}
	}
	fast := func(context.Context) (order, error) { return order{ID: "o1", Status: "created"}, nil }
	down := func(context.Context) (order, error) { return order{}, errDown }

	if _, _, err := patient.Get(ctx, "order:o1", fast); err != nil {
		t.Fatal(err)
	}
	_ = patient.Invalidate(ctx, "order:o1")
	// Five readers while the database is slow: the copy for each, one load.
	// Each request is over once answered, as a server's would be.
	for range 5 {
		rctx, done := context.WithTimeout(ctx, time.Minute)
		v, stale, err := patient.Get(rctx, "order:o1", slow)
		done()
		if err != nil || !stale || v.Status != "created" {
			t.Fatalf("slow, a copy in hand: %+v stale=%v err=%v; want the copy, stale", v, stale, err)
		}
	}
	release <- struct{}{}
	<-finished
	if n, c := loads.Load(), cut.Load(); n != 1 || c != 0 {
		t.Fatalf("%d loads, %d cut; want one load, finished", n, c)
	}
	// Its answer is the cache's now: the next reader needs no database.
	if v, stale, err := patient.Get(ctx, "order:o1", down); err != nil || stale || v.Status != "paid" {
		t.Fatalf("after the slow load: %+v stale=%v err=%v; want its answer, fresh from the cache", v, stale, err)
	}

	for _, tt := range []struct {
		name string
		f    *resilience.Fallback[order]
		key  string
		set  fixes.Set
	}{
		{"no copy to fall back on", patient, "order:o2", fixes.Resilient},
		{"no patience", resilience.NewFallback[order](store, time.Minute, time.Hour, board, nil), "order:o1", fixes.Resilient},
		{"cache_fallback off", patient, "order:o1", fixes.Naive},
	} {
		board.Replace(tt.set, "test")
		_ = tt.f.Invalidate(ctx, tt.key)
		go func() { time.Sleep(100 * time.Millisecond); release <- struct{}{} }()
		v, stale, err := tt.f.Get(ctx, tt.key, slow)
		<-finished
		if err != nil || stale || v.Status != "paid" {
			t.Errorf("%s: %+v stale=%v err=%v; want the slow load's answer, waited for", tt.name, v, stale, err)
		}
	}
}

// A load that panics on its own goroutine must not take the process down: it
// is the load's failure, and the last good copy answers.
func TestFallbackSurvivesAPanickingLoad(t *testing.T) {
	t.Parallel()
	rdb, prefix := testkit.Redis(t)
	board := fixes.NewBoard(fixes.Resilient, quiet)
	f := resilience.NewFallback[order](cache.NewStore(rdb, prefix), time.Minute, time.Hour, board, nil).WithPatience(time.Second)
	ctx := context.Background()
	if _, _, err := f.Get(ctx, "order:o1", func(context.Context) (order, error) { return order{ID: "o1"}, nil }); err != nil {
		t.Fatal(err)
	}
	_ = f.Invalidate(ctx, "order:o1")
	panics := func(context.Context) (order, error) { panic("bug") }
	if v, stale, err := f.Get(ctx, "order:o1", panics); err != nil || !stale || v.ID != "o1" {
		t.Fatalf("a copy in hand: %+v stale=%v err=%v; want the copy", v, stale, err)
	}
	if _, _, err := f.Get(ctx, "order:o2", panics); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("no copy: err=%v; want the panic as the load's error", err)
	}
}
