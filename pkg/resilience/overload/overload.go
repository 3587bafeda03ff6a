// Package overload simulates the incident in miniature, so admission
// policies can be compared on the same overload, deterministically.
//
// A server has a fixed number of workers and a fixed service time: its
// capacity is Workers/Service requests a second. Requests arrive at a
// constant rate whatever happens (an open model: a slow server cannot slow
// the clients down), pass an admission policy, then wait for a worker in
// FIFO order. The server does not know that a client has given up, so it
// does work nobody will read — exactly like a handler without deadlines.
// A request is good if its answer arrives within the client's timeout.
//
// Run it inside testing/synctest's bubble: time is then virtual, a
// simulated minute takes milliseconds, and the result does not depend on how
// busy the machine is.
package overload

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Admission is the policy under test: admit a request (and later release
// it) or refuse it.
type Admission interface {
	Admit(ctx context.Context) (release func(), ok bool)
}

// AdmitAll is the absence of a policy.
type AdmitAll struct{}

// Admit admits.
func (AdmitAll) Admit(context.Context) (func(), bool) { return func() {}, true }

// Scenario is one overload.
type Scenario struct {
	Workers       int
	Service       time.Duration // per request, per worker
	Load          float64       // offered rate as a multiple of capacity
	Duration      time.Duration
	ClientTimeout time.Duration
}

// Capacity is the most requests a second the server can complete.
func (s Scenario) Capacity() float64 { return float64(s.Workers) / s.Service.Seconds() }

// Result is what happened.
type Result struct {
	Offered, Rejected, Good, Late int
	// Goodput is good answers a second, from the first arrival to the last
	// answer, as a fraction of capacity.
	Goodput float64
	// P99Admitted is the 99th percentile latency of admitted requests;
	// P99Rejected that of refusals (how fast "no" is).
	P99Admitted, P99Rejected time.Duration
}

// Run plays s against adm and waits for every request to end.
func Run(s Scenario, adm Admission) Result {
	workers := make(chan struct{}, s.Workers)
	interval := time.Duration(float64(time.Second) / (s.Capacity() * s.Load))
	n := int(s.Duration / interval)

	var mu sync.Mutex
	var r Result
	var admitted, rejected []time.Duration
	var last time.Time
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		// Arrivals on a fixed schedule, never delayed by the server.
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.ClientTimeout)
			defer cancel()
			t0 := time.Now()
			release, ok := adm.Admit(ctx)
			if !ok {
				mu.Lock()
				r.Rejected++
				rejected = append(rejected, time.Since(t0))
				mu.Unlock()
				return
			}
			workers <- struct{}{} // FIFO wait for a worker, deaf to the client's timeout
			time.Sleep(s.Service)
			<-workers
			release()
			took := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			last = time.Now()
			admitted = append(admitted, took)
			if took <= s.ClientTimeout {
				r.Good++
			} else {
				r.Late++
			}
		})
	}
	wg.Wait()
	r.Offered = n
	span := max(last.Sub(start), s.Duration)
	r.Goodput = float64(r.Good) / span.Seconds() / s.Capacity()
	r.P99Admitted = p99(admitted)
	r.P99Rejected = p99(rejected)
	return r
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[(len(d)*99)/100]
}
