package resilience

import (
	"context"
	"time"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/fixes"
)

// Fallback is cache-aside with a memory: every value loaded is also kept as
// the "last good copy" for much longer than it is fresh. When loading fails
// (the database is down, slow, or its breaker is open), the last good copy is
// served, marked stale, instead of an error.
//
// Client errors are never papered over: an order that does not exist is a
// 404 even during an outage, and a stale copy is only ever of something that
// really existed.
type Fallback[T any] struct {
	store *cache.Store
	fresh time.Duration
	keep  time.Duration
	board *fixes.Board
	obs   *Observer
}

// NewFallback caches values for fresh and keeps the last good copy for keep.
func NewFallback[T any](store *cache.Store, fresh, keep time.Duration, board *fixes.Board, obs *Observer) *Fallback[T] {
	return &Fallback[T]{store: store, fresh: fresh, keep: keep, board: board, obs: obs}
}

// Get returns the value for key: fresh from the cache, else from load, else
// the last good copy with stale = true. A cache that is down only costs the
// cache: load still runs. With the cache_fallback fix off there is no cache
// at all: every read is a load, as in the incident.
func (f *Fallback[T]) Get(ctx context.Context, key string, load func(context.Context) (T, error)) (v T, stale bool, err error) {
	if !f.board.On(fixes.CacheFallback) {
		v, err = load(ctx)
		return v, false, err
	}
	// fix: cache_fallback — cache-aside, with a last good copy kept for outages.
	found, ticket, cerr := f.store.Lookup(ctx, key, &v)
	if found {
		return v, false, nil
	}
	if cerr != nil {
		f.obs.logger().DebugContext(ctx, "cache read failed", "key", key, "error", cerr)
	}
	v, err = load(ctx)
	if err == nil {
		// Both writes are best effort: the value is already in hand.
		_, _ = f.store.Fill(ctx, key, v, f.fresh, ticket)
		_ = f.store.Set(ctx, lastGood(key), v, f.keep)
		return v, false, nil
	}
	if Classify(err) != Failure {
		return v, false, err
	}
	// The dependency failed: the last good copy beats an error.
	var last T
	if ok, _ := f.store.Get(ctx, lastGood(key), &last); ok {
		f.obs.servedStale()
		return last, true, nil
	}
	return v, false, err
}

// Invalidate drops the fresh copy after a write; the last good copy stays,
// to be served only if the next load fails.
func (f *Fallback[T]) Invalidate(ctx context.Context, key string) error {
	return f.store.Invalidate(ctx, key)
}

func lastGood(key string) string { return key + ":last-good" }
