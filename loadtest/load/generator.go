// Package load is the replay's open-model load generator: arrivals on a
// clock of their own, a recorder of every answer by second and by class, and
// the shoppers whose requests make up the traffic mix.
package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Schedule gives the arrival rate, in requests per second, at offset t.
type Schedule func(t time.Duration) float64

// Fire sends one request that was due at offset due. It runs on a goroutine
// of its own.
type Fire func(ctx context.Context, due time.Duration)

// Generator sends requests at the rate of a schedule, whatever the server
// does. This is the open model: the i-th request is due when the schedule's
// rate, integrated over time, reaches i, and it is sent then on a goroutine
// of its own, even if every earlier request is still waiting. A closed-model
// tool (N workers, each waiting for its answer before sending the next) would
// slow down with the server and so offer less load exactly when the server is
// in trouble, and its latencies would leave out the time requests spent
// waiting to be sent (coordinated omission). Fire receives the due time, and
// latencies are measured from it.
type Generator struct {
	// MaxInFlight bounds the requests waiting for an answer, to protect the
	// machine that runs the generator. An arrival over the bound is not
	// sent; it is counted in Dropped and reported, never hidden.
	MaxInFlight int64

	inFlight atomic.Int64
	sent     atomic.Int64
	dropped  atomic.Int64
}

// Run sends arrivals from start for length and waits for the last answers.
// ctx ends it early.
func (g *Generator) Run(ctx context.Context, start time.Time, length time.Duration, rate Schedule, fire Fire) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var due time.Duration // the next arrival
	for due < length {
		if wait := time.Until(start.Add(due)); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if g.MaxInFlight > 0 && g.inFlight.Load() >= g.MaxInFlight {
			g.dropped.Add(1)
		} else {
			g.inFlight.Add(1)
			g.sent.Add(1)
			d := due
			wg.Go(func() {
				defer g.inFlight.Add(-1)
				fire(ctx, d)
			})
		}
		due += next(rate(due))
	}
}

// next is the gap to the following arrival at rate r; a zero rate pauses the
// schedule for a tenth of a second and looks again.
func next(r float64) time.Duration {
	if r <= 0 {
		return 100 * time.Millisecond
	}
	return time.Duration(float64(time.Second) / r)
}

// InFlight is the number of requests waiting for an answer.
func (g *Generator) InFlight() int64 { return g.inFlight.Load() }

// Sent is the number of requests sent so far.
func (g *Generator) Sent() int64 { return g.sent.Load() }

// Dropped is the number of arrivals not sent because MaxInFlight were waiting.
func (g *Generator) Dropped() int64 { return g.dropped.Load() }
