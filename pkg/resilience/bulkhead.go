package resilience

import (
	"context"
	"time"
)

// Bulkhead bounds the calls in flight to one dependency, so that one slow
// dependency can hold at most its own share of goroutines and connections and
// not sink the whole service (the compartments of a ship's hull).
type Bulkhead struct {
	name string
	sem  chan struct{}
	wait time.Duration
	obs  *Observer
}

// NewBulkhead allows max concurrent calls; a call waits at most wait for a
// slot.
func NewBulkhead(name string, maxConcurrent int, wait time.Duration, obs *Observer) *Bulkhead {
	return &Bulkhead{name: name, sem: make(chan struct{}, maxConcurrent), wait: wait, obs: obs}
}

// FullError is returned when no slot freed up in time: an overload.
type FullError struct{ Name string }

func (e *FullError) Error() string             { return e.Name + " is saturated" }
func (e *FullError) Code() string              { return "dependency_saturated" }
func (e *FullError) RetryAfter() time.Duration { return time.Second }

// Do runs fn holding a slot. The time in here, the wait for a slot and the
// call, is bounded by the bulkhead, so the Shedder at the door does not count
// it (see Outside).
func (b *Bulkhead) Do(ctx context.Context, fn func(context.Context) error) error {
	defer Outside(ctx)()
	select {
	case b.sem <- struct{}{}:
	default:
		t := time.NewTimer(b.wait)
		defer t.Stop()
		select {
		case b.sem <- struct{}{}:
		case <-t.C:
			b.obs.reject("bulkhead", b.name)
			return &FullError{Name: b.name}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-b.sem }()
	return fn(ctx)
}
