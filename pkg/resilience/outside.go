package resilience

import (
	"context"
	"sync"
	"time"
)

// outside is the time a request has spent waiting on dependencies from
// inside their compartments: holding a slot of the database pool's gate, of
// an outbound client's bulkhead. Calls may nest (a transaction that calls
// another service) or overlap (two calls at once): what counts is the time
// during which at least one was out, once.
type outside struct {
	mu    sync.Mutex
	depth int
	since time.Time
	total time.Duration
}

type outsideKey struct{}

// withOutside returns ctx carrying a fresh clock for Outside; Shed gives one
// to every request it admits, and its Permit reads it on Release.
func withOutside(ctx context.Context) context.Context {
	return context.WithValue(ctx, outsideKey{}, &outside{})
}

// Outside marks the request of ctx as waiting on a dependency, inside that
// dependency's own compartment, until back is called. The Shedder at the
// door does not count that time as the service's latency: the compartment
// bounds it already (how many wait, and for how long), and a slow database
// is not a sign that the door admits too much. A ctx without a clock (no
// Shed middleware before it) makes Outside a no-op.
func Outside(ctx context.Context) (back func()) {
	o, _ := ctx.Value(outsideKey{}).(*outside)
	if o == nil {
		return func() {}
	}
	o.mu.Lock()
	if o.depth == 0 {
		o.since = time.Now()
	}
	o.depth++
	o.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.depth--
			if o.depth == 0 {
				o.total += time.Since(o.since)
			}
		})
	}
}

// spent returns the time spent outside so far, counting a call still out
// up to now. A nil clock has spent nothing.
func (o *outside) spent() time.Duration {
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.depth > 0 {
		return o.total + time.Since(o.since)
	}
	return o.total
}
