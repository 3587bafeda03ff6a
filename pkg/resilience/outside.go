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
	// door is the Shedder whose slot the request holds, from its admission
	// to its release (nil before and after). Once the request has been out
	// for half the door's target, the slot is lent back to the door (lent):
	// the compartment bounds that request now, and the door's slots are for
	// work in the service itself. A short call keeps its slot: lending it
	// for every quick query let the door admit more than the CPUs could do.
	door  *Shedder
	lent  bool
	lendT *time.Timer // set while out and not yet lent; stopped, and reused, after
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
// is not a sign that the door admits too much. Out for half the door's
// target, the request lends its slot at the door back until back is called.
// A ctx without a clock (no Shed middleware before it) makes Outside a no-op.
func Outside(ctx context.Context) (back func()) {
	o, _ := ctx.Value(outsideKey{}).(*outside)
	if o == nil {
		return func() {}
	}
	o.mu.Lock()
	if o.depth == 0 {
		o.since = time.Now()
		if o.door != nil {
			if o.lendT == nil {
				o.lendT = time.AfterFunc(o.door.s.Target/2, o.lend)
			} else {
				o.lendT.Reset(o.door.s.Target / 2)
			}
		}
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
				if o.lendT != nil {
					o.lendT.Stop() // kept for the request's next call
				}
				if o.lent {
					o.lent = false
					if o.door != nil {
						o.door.reclaim()
					}
				}
			}
		})
	}
}

// lend lends the request's slot back to its door, if it is still out and
// still holds one. (A timer that fired just as a call came back may find the
// request's next call out, and lend a little early: the slot is taken again
// when that call comes back.)
func (o *outside) lend() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.depth == 0 || o.door == nil || o.lent {
		return
	}
	o.lent = true
	o.door.lend()
}

// admitted records that the request holds a slot of door from now on.
func (o *outside) admitted(door *Shedder) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.door = door
}

// released ends the request's hold on its door's slot, and reports whether
// the slot is lent at this moment (a call of the request long out, as a load
// left to finish in the background): then it was given back already.
func (o *outside) released() (lent bool) {
	if o == nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	lent = o.door != nil && o.lent
	o.door, o.lent = nil, false
	return lent
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
