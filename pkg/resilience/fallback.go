package resilience

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/fixes"
)

// Fallback is cache-aside with a memory: every value loaded is also kept as
// the "last good copy" for much longer than it is fresh. When loading fails
// (the database is down, or its breaker is open), the last good copy is
// served, marked stale, instead of an error; and, given a patience, when
// loading is slow (see WithPatience).
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
	// patience is how long a load is waited for when a last good copy is
	// there to serve instead (0: as long as the caller's context lives).
	patience time.Duration
	// loads runs the loads that a copy stands behind, one per key at a time.
	loads singleflight.Group
}

// NewFallback caches values for fresh and keeps the last good copy for keep.
func NewFallback[T any](store *cache.Store, fresh, keep time.Duration, board *fixes.Board, obs *Observer) *Fallback[T] {
	return &Fallback[T]{store: store, fresh: fresh, keep: keep, board: board, obs: obs}
}

// ReadPatience is the patience the shop's services give their reads: how long
// a read that has a last good copy waits for its database before the copy is
// served instead. Past it, the copy now is worth more than a fresh answer
// later; and it is far more than a read takes while the database is well.
const ReadPatience = 100 * time.Millisecond

// WithPatience makes a read wait at most d for its load when a last good copy
// can answer instead: past it the copy is served, stale, while the load
// carries on in the background until the first reader's deadline, and its
// answer refreshes the cache for the reads after it. A read with no copy to
// fall back on waits for the load as before: a slow answer beats none.
// Concurrent misses of one key share one load.
//
// The load is left to finish, not cut: a query abandoned halfway breaks its
// connection, and under a slow database opening another costs more than the
// query (loadtest/MEASUREMENTS.md, "Postgres slow").
func (f *Fallback[T]) WithPatience(d time.Duration) *Fallback[T] {
	f.patience = d
	return f
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
	if f.patience > 0 {
		return f.getPatiently(ctx, key, ticket, load)
	}
	v, err = f.loadAndKeep(ctx, key, ticket, load)
	return f.settle(ctx, key, v, err)
}

// settle turns a load's outcome into Get's answer: a failure is answered with
// the last good copy, if there is one.
func (f *Fallback[T]) settle(ctx context.Context, key string, v T, err error) (T, bool, error) {
	if err == nil || Classify(err) != Failure {
		return v, false, err
	}
	// The dependency failed: the last good copy beats an error.
	if last, ok := f.lastGood(ctx, key); ok {
		return last, true, nil
	}
	return v, false, err
}

// getPatiently is Get's load for a Fallback with a patience.
func (f *Fallback[T]) getPatiently(ctx context.Context, key string, ticket cache.Ticket, load func(context.Context) (T, error)) (T, bool, error) {
	done := f.loads.DoChan(key, func() (any, error) {
		// The first reader's load, detached from its request (which may be
		// answered before the load is done) but bounded by its deadline.
		lctx, cancel := context.WithoutCancel(ctx), context.CancelFunc(func() {})
		if deadline, ok := ctx.Deadline(); ok {
			lctx, cancel = context.WithDeadline(lctx, deadline)
		}
		defer cancel()
		return f.loadAndKeepSafely(lctx, key, ticket, load)
	})
	patience := time.NewTimer(f.patience)
	defer patience.Stop()
	expired := patience.C
	for {
		select {
		case r := <-done:
			v, _ := r.Val.(T)
			return f.settle(ctx, key, v, r.Err)
		case <-expired:
			// fix: cache_fallback — a slow database is not waited for past
			// the patience when the last good copy can answer.
			if last, ok := f.lastGood(ctx, key); ok {
				return last, true, nil
			}
			expired = nil // nothing to answer with instead: wait for the load
		case <-ctx.Done():
			var zero T
			return zero, false, ctx.Err()
		}
	}
}

// lastGood reads key's last good copy, counting it as served stale.
func (f *Fallback[T]) lastGood(ctx context.Context, key string) (T, bool) {
	var last T
	ok, _ := f.store.Get(ctx, lastGood(key), &last)
	if ok {
		f.obs.servedStale()
	}
	return last, ok
}

// loadAndKeep loads key and, on success, caches it fresh and as the last
// good copy. Both writes are best effort: the value is already in hand.
func (f *Fallback[T]) loadAndKeep(ctx context.Context, key string, ticket cache.Ticket, load func(context.Context) (T, error)) (T, error) {
	v, err := load(ctx)
	if err == nil {
		_, _ = f.store.Fill(ctx, key, v, f.fresh, ticket)
		_ = f.store.Set(ctx, lastGood(key), v, f.keep)
	}
	return v, err
}

// loadAndKeepSafely is loadAndKeep on a goroutine of its own, where a panic
// would take the process down past any recovery middleware: it is logged and
// becomes the load's error.
func (f *Fallback[T]) loadAndKeepSafely(ctx context.Context, key string, ticket cache.Ticket, load func(context.Context) (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("resilience: load of %s panicked: %v", key, p)
			f.obs.logger().ErrorContext(ctx, "load panicked", "key", key, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	return f.loadAndKeep(ctx, key, ticket, load)
}

// Keep caches v, a value the caller has in hand, as key's fresh copy and its
// last good one, as a load would: for a value just written that never
// changes, whose first read then needs no load and which is there to serve
// stale even if it was never read. Best effort, as a load's writes are. With
// the cache_fallback fix off there is no cache: nothing is kept.
func (f *Fallback[T]) Keep(ctx context.Context, key string, v T) {
	if !f.board.On(fixes.CacheFallback) {
		return
	}
	// fix: cache_fallback — written as it is made, not on its first read.
	_ = f.store.Set(ctx, key, v, f.fresh)
	_ = f.store.Set(ctx, lastGood(key), v, f.keep)
}

// Invalidate drops the fresh copy after a write; the last good copy stays,
// to be served only if the next load fails.
func (f *Fallback[T]) Invalidate(ctx context.Context, key string) error {
	return f.store.Invalidate(ctx, key)
}

func lastGood(key string) string { return key + ":last-good" }
