package resilience_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/resilience/overload"
)

// shedding adapts a Shedder to the simulator.
type shedding struct{ sh *resilience.Shedder }

func (a shedding) Admit(ctx context.Context) (func(), bool) {
	p, err := a.sh.Acquire(ctx, resilience.Sheddable)
	if err != nil {
		return nil, false
	}
	return p.Release, true
}

// The promotion in miniature: ten times the capacity, for five seconds.
var promo = overload.Scenario{Workers: 4, Service: 10 * time.Millisecond, Load: 10, Duration: 5 * time.Second, ClientTimeout: 300 * time.Millisecond}

func TestSheddingKeepsGoodputUnderTenfoldLoad(t *testing.T) {
	var with, without overload.Result
	synctest.Test(t, func(t *testing.T) {
		with = overload.Run(promo, shedding{resilience.NewShedder(resilience.ShedSettings{}, nil)})
	})
	synctest.Test(t, func(t *testing.T) {
		without = overload.Run(promo, overload.AdmitAll{})
	})
	t.Logf("capacity %.0f/s, offered %d requests", promo.Capacity(), with.Offered)
	t.Logf("with shedding:    goodput %.1f%%, late %d, rejected %d, p99 admitted %v, p99 rejected %v", 100*with.Goodput, with.Late, with.Rejected, with.P99Admitted, with.P99Rejected)
	t.Logf("without shedding: goodput %.1f%%, late %d, p99 %v", 100*without.Goodput, without.Late, without.P99Admitted)

	if with.Goodput < 0.90 {
		t.Errorf("with shedding goodput is %.1f%% of capacity, want at least 90%%", 100*with.Goodput)
	}
	if with.P99Rejected > 10*time.Millisecond {
		t.Errorf("refusals must be fast: p99 %v", with.P99Rejected)
	}
	if without.Goodput > 0.20 {
		t.Errorf("without shedding goodput is %.1f%%; the simulation should collapse below 20%%", 100*without.Goodput)
	}
}

func TestShedderAdaptsTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sh := resilience.NewShedder(resilience.ShedSettings{Target: 50 * time.Millisecond, InitialLimit: 10}, nil)
		ctx := context.Background()
		// Fast work at full use of the limit: the limit grows.
		for range 200 {
			var ps []*resilience.Permit
			for range sh.Limit() {
				p, err := sh.Acquire(ctx, resilience.Sheddable)
				if err != nil {
					t.Fatal(err)
				}
				ps = append(ps, p)
			}
			time.Sleep(time.Millisecond)
			for _, p := range ps {
				p.Release()
			}
		}
		grown := sh.Limit()
		if grown <= 10 {
			t.Fatalf("limit %d after fast work, want it grown past 10", grown)
		}
		// Slow work: the limit shrinks, at most once per target interval.
		for range 10 {
			p, _ := sh.Acquire(ctx, resilience.Sheddable)
			time.Sleep(100 * time.Millisecond)
			p.Release()
		}
		if got := sh.Limit(); got >= grown || got < 2 {
			t.Fatalf("limit %d after slow work, want below %d", got, grown)
		}
	})
}

func TestShedderQueueIsShortAndBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sh := resilience.NewShedder(resilience.ShedSettings{InitialLimit: 1, MinLimit: 1, MaxLimit: 1, QueueSize: 1, QueueWait: 10 * time.Millisecond}, nil)
		ctx := context.Background()
		p, err := sh.Acquire(ctx, resilience.Sheddable)
		if err != nil {
			t.Fatal(err)
		}
		// One waits in the queue, the next finds it full and is refused at once.
		queued := make(chan error, 1)
		go func() {
			q, err := sh.Acquire(ctx, resilience.Sheddable)
			if err == nil {
				q.Release()
			}
			queued <- err
		}()
		synctest.Wait()
		t0 := time.Now()
		if _, err := sh.Acquire(ctx, resilience.Sheddable); err == nil || time.Since(t0) != 0 {
			t.Fatalf("queue full: err=%v after %v, want an immediate refusal", err, time.Since(t0))
		}
		// Released within the wait: the queued request gets the slot.
		time.Sleep(5 * time.Millisecond)
		p.Release()
		if err := <-queued; err != nil {
			t.Fatalf("queued request: %v, want admitted", err)
		}
		// Nothing released within the wait: refused after QueueWait.
		p, _ = sh.Acquire(ctx, resilience.Sheddable)
		t0 = time.Now()
		_, err = sh.Acquire(ctx, resilience.Sheddable)
		var shed *resilience.ShedError
		if !errorsAs(err, &shed) || time.Since(t0) != 10*time.Millisecond {
			t.Fatalf("queue timeout: %v after %v", err, time.Since(t0))
		}
		p.Release()
	})
}

// A request joins the queue only if a slot is expected well within
// QueueWait (half of it): with a slot freed every 4 ms and 18 ms to wait
// (9 ms expected at most), the first two places (2 and 6 ms expected: half a
// gap until the next slot, then a gap per place ahead) are worth it, the
// third (10 ms) is not, and is refused at once.
func TestShedderQueuesOnlyWhenASlotIsExpectedInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sh := resilience.NewShedder(resilience.ShedSettings{InitialLimit: 1, MinLimit: 1, MaxLimit: 1,
			QueueSize: 16, QueueWait: 18 * time.Millisecond}, nil)
		ctx := context.Background()
		for range 100 { // a request finishing every 4 ms
			p, err := sh.Acquire(ctx, resilience.Sheddable)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(4 * time.Millisecond)
			p.Release()
		}
		p, _ := sh.Acquire(ctx, resilience.Sheddable)
		results := make(chan error, 2)
		for range 2 {
			go func() {
				q, err := sh.Acquire(ctx, resilience.Sheddable)
				if err == nil {
					time.Sleep(4 * time.Millisecond)
					q.Release()
				}
				results <- err
			}()
		}
		synctest.Wait() // both are queued
		t0 := time.Now()
		_, err := sh.Acquire(ctx, resilience.Sheddable)
		var shed *resilience.ShedError
		if !errorsAs(err, &shed) || time.Since(t0) != 0 {
			// Expected from a random moment: 2 ms until the next slot, 4 ms per place ahead.
			t.Fatalf("third place, 10 ms expected (> 9 ms): err=%v after %v, want an immediate refusal", err, time.Since(t0))
		}
		time.Sleep(4 * time.Millisecond)
		p.Release()
		for range 2 {
			if err := <-results; err != nil {
				t.Fatalf("a queued request expected in time was refused: %v", err)
			}
		}
	})
}

// Slots that free in bursts: four requests finish together, then nothing for
// 10 ms. The mean gap between freed slots is 2.5 ms, but a request arriving
// in the lull waits for most of it; the queue (5 ms) would only keep it
// waiting to refuse it. It is refused at once.
func TestShedderSeesThroughBurstsOfFreedSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sh := resilience.NewShedder(resilience.ShedSettings{InitialLimit: 4, MinLimit: 4, MaxLimit: 4,
			QueueSize: 16, QueueWait: 5 * time.Millisecond}, nil)
		ctx := context.Background()
		permits := make([]*resilience.Permit, 4)
		acquire := func() {
			for i := range permits {
				p, err := sh.Acquire(ctx, resilience.Sheddable)
				if err != nil {
					t.Fatal(err)
				}
				permits[i] = p
			}
		}
		for range 50 {
			acquire()
			time.Sleep(10 * time.Millisecond)
			for _, p := range permits {
				p.Release()
			}
		}
		acquire()
		time.Sleep(time.Millisecond) // in the lull: the next slot frees in 9 ms
		t0 := time.Now()
		_, err := sh.Acquire(ctx, resilience.Sheddable)
		var shed *resilience.ShedError
		if !errorsAs(err, &shed) || time.Since(t0) != 0 {
			t.Fatalf("err=%v after %v; want an immediate refusal, not a wait in vain", err, time.Since(t0))
		}
	})
}

// cpuWatcher is a Shedder whose CPU wait a test sets (busy: 5 ms, p99;
// calm: 0.1 ms), watched against a 2 ms CPUWait unless watched is false.
type cpuWatcher struct {
	sh   *resilience.Shedder
	reg  *prometheus.Registry // where its Observer reports
	busy atomic.Bool
}

func newCPUWatcher(watched bool) *cpuWatcher {
	w := &cpuWatcher{}
	s := resilience.ShedSettings{InitialLimit: 100, CPUWaitSource: func() (time.Duration, uint64) { // what runtime/metrics would say
		if w.busy.Load() {
			return 5 * time.Millisecond, 100
		}
		return 100 * time.Microsecond, 100
	}}
	if watched {
		s.CPUWait = 2 * time.Millisecond
	}
	w.reg = prometheus.NewRegistry()
	w.sh = resilience.NewShedder(s, resilience.NewObserver(w.reg, nil))
	return w
}

// gauge reads the Observer's series name (one series) as Prometheus would.
func (w *cpuWatcher) gauge(t *testing.T, name string) float64 {
	t.Helper()
	families, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no single series %s", name)
	return 0
}

// offer sends fast requests for d, together at every tick of every, and
// returns how many of them were admitted and how many were sent.
func (w *cpuWatcher) offer(d, every time.Duration, together int) (admitted, sent int) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(every) {
		for range together {
			sent++
			if p, err := w.sh.Acquire(context.Background(), resilience.Sheddable); err == nil {
				admitted++
				p.Release()
			}
		}
	}
	return admitted, sent
}

// While the process's goroutines wait for a CPU, the shedder admits fewer
// requests a second, however fast they are; when they stop waiting, it
// admits them all again. A wait cuts it no lower than half the rate it
// served without one (the wait may be another process's, or the refusals'
// own); one that lasts brings it lower as that rate fades. Off (CPUWait 0),
// the wait changes nothing.
func TestShedderKeepsACPUFreeWhenGoroutinesWaitForOne(t *testing.T) {
	for _, watched := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			w := newCPUWatcher(watched)
			// Fast requests, one a millisecond: the concurrency limit never binds.
			w.offer(time.Second, time.Millisecond, 1)
			if n, _ := w.offer(500*time.Millisecond, time.Millisecond, 1); n < 495 {
				t.Fatalf("watched %v, CPUs free: %d of 500 admitted", watched, n)
			}
			w.busy.Store(true)
			w.offer(2500*time.Millisecond, time.Millisecond, 1)
			n, _ := w.offer(500*time.Millisecond, time.Millisecond, 1)
			if watched && (n < 130 || n > 210) {
				// Cuts alone would have brought the cap to 1000 × 0.9^25 ≈ 70/s by now.
				t.Fatalf("goroutines waiting for a CPU for 2.5 s: %d of 500 admitted in the next half second, want half the rate served before, faded (130–210)", n)
			}
			w.offer(7500*time.Millisecond, time.Millisecond, 1)
			n, _ = w.offer(500*time.Millisecond, time.Millisecond, 1)
			if watched && n > 150 {
				t.Fatalf("goroutines waiting for a CPU for 10 s: %d of 500 admitted in the last half second, want at most 150", n)
			}
			if !watched && n < 495 {
				t.Fatalf("not watched: %d of 500 admitted while goroutines waited", n)
			}
			c := w.sh.CPUCap()
			if (c > 0) != watched {
				t.Fatalf("watched %v, goroutines waiting: CPUCap %.0f/s", watched, c)
			}
			if g := w.gauge(t, "shed_cpu_cap_per_second"); g != c {
				t.Fatalf("watched %v: shed_cpu_cap_per_second %.0f, CPUCap %.0f", watched, g, c)
			}
			w.busy.Store(false)
			w.offer(5*time.Second, time.Millisecond, 1)
			if n, _ := w.offer(500*time.Millisecond, time.Millisecond, 1); n < 495 {
				t.Fatalf("watched %v, CPUs free again: %d of 500 admitted", watched, n)
			}
			if c := w.sh.CPUCap(); c != 0 && c < 1000 {
				t.Fatalf("watched %v, CPUs free again: CPUCap %.0f/s, want none or above the 1000/s offered", watched, c)
			}
			if g, c := w.gauge(t, "shed_cpu_cap_per_second"), w.sh.CPUCap(); g != c {
				t.Fatalf("watched %v, CPUs free again: shed_cpu_cap_per_second %.0f, CPUCap %.0f", watched, g, c)
			}
		})
	}
}

// SetCPUWait switches the cap at run time (the admin API's PUT
// /admin/shedding): on, it comes down while the goroutines wait for a CPU;
// off, it is lifted at once, whatever the wait.
func TestSetCPUWaitSwitchesTheCapAtRunTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newCPUWatcher(false)
		w.busy.Store(true)
		if n, _ := w.offer(500*time.Millisecond, time.Millisecond, 1); n < 495 || w.sh.CPUWait() != 0 {
			t.Fatalf("off: %d of 500 admitted while goroutines waited, CPUWait %v", n, w.sh.CPUWait())
		}
		w.sh.SetCPUWait(2 * time.Millisecond)
		w.offer(500*time.Millisecond, time.Millisecond, 1)
		if n, _ := w.offer(500*time.Millisecond, time.Millisecond, 1); n > 300 || w.sh.CPUCap() == 0 {
			t.Fatalf("switched on: %d of 500 admitted in the second half second (want at most 300), CPUCap %.0f/s", n, w.sh.CPUCap())
		}
		w.sh.SetCPUWait(0)
		if c, g := w.sh.CPUCap(), w.gauge(t, "shed_cpu_cap_per_second"); c != 0 || g != 0 {
			t.Fatalf("switched off: CPUCap %.0f/s, shed_cpu_cap_per_second %.0f; want none", c, g)
		}
		if n, _ := w.offer(500*time.Millisecond, time.Millisecond, 1); n < 495 {
			t.Fatalf("switched off, goroutines still waiting: %d of 500 admitted", n)
		}
	})
}

// The cap bounds a rate, not the gap between two requests: requests that
// arrive in pairs, 100 a second, get in at the cap's rate. (Its bucket used
// to hold a hundredth of a second of the cap, one token below 100/s, and
// refused the second of every pair whatever the cap.)
func TestCPUCapIsARateNotAGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newCPUWatcher(true)
		w.busy.Store(true) // the cap comes down below 100/s
		w.offer(300*time.Millisecond, 20*time.Millisecond, 2)
		w.busy.Store(false) // and climbs back, 5 % a tenth of a second, until it is lifted over 200/s
		for range 50 {
			c := w.sh.CPUCap()
			n, sent := w.offer(100*time.Millisecond, 20*time.Millisecond, 2)
			if want := min(sent, int(c/10)) - 1; c > 0 && n < want {
				t.Fatalf("CPUCap %.0f/s, pairs at 100/s: %d of %d admitted in a tenth of a second, want at least %d", c, n, sent, want)
			}
		}
		if c := w.sh.CPUCap(); c != 0 {
			t.Fatalf("CPU calm for 5 s: CPUCap %.0f/s, want it lifted", c)
		}
	})
}

// A call from another of the shop's services is work already admitted there:
// the CPU cap, which holds new requests back, lets it through.
func TestCriticalCallsPassTheCPUCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newCPUWatcher(true)
		w.busy.Store(true)
		w.offer(500*time.Millisecond, time.Millisecond, 1) // the cap comes down
		if w.sh.CPUCap() == 0 {
			t.Fatal("goroutines waiting for a CPU, and no cap")
		}
		admitted := map[resilience.Criticality]int{}
		for range 500 {
			for _, crit := range []resilience.Criticality{resilience.Sheddable, resilience.Critical} {
				if p, err := w.sh.Acquire(context.Background(), crit); err == nil {
					admitted[crit]++
					p.Release()
				}
			}
			time.Sleep(time.Millisecond)
		}
		if n := admitted[resilience.Critical]; n != 500 {
			t.Errorf("critical calls under the CPU cap: %d of 500 admitted, want all", n)
		}
		if n := admitted[resilience.Sheddable]; n > 300 {
			t.Errorf("new requests under the CPU cap: %d of 500 admitted, want at most 300", n)
		}
	})
}

// When a slot frees, a critical call waiting for one gets it before the new
// requests that queued earlier; the concurrency limit binds it all the same.
func TestCriticalCallsWaitAtTheFrontOfTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sh := resilience.NewShedder(resilience.ShedSettings{InitialLimit: 1, MinLimit: 1, MaxLimit: 1}, nil)
		held, err := sh.Acquire(context.Background(), resilience.Critical)
		if err != nil {
			t.Fatal(err)
		}
		order := make(chan string, 3)
		var wg sync.WaitGroup
		defer wg.Wait()
		wait := arrivals(sh, &wg, order)
		wait("new 1", resilience.Sheddable)
		wait("new 2", resilience.Sheddable)
		wait("call", resilience.Critical)
		if n := sh.Inflight(); n != 1 {
			t.Fatalf("%d in flight with a limit of 1", n)
		}
		held.Release()
		var got []string
		for range 3 {
			got = append(got, <-order)
		}
		if want := []string{"call", "new 1", "new 2"}; !slices.Equal(got, want) {
			t.Fatalf("admitted in the order %q, want %q", got, want)
		}
	})
}

// A full queue makes room for another service's call: the newest new
// request waiting is refused instead (it has waited least), never a call.
func TestCriticalCallsDisplaceTheNewestSheddableFromAFullQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sh := resilience.NewShedder(resilience.ShedSettings{InitialLimit: 1, MinLimit: 1, MaxLimit: 1, QueueSize: 2}, nil)
		held, err := sh.Acquire(context.Background(), resilience.Critical)
		if err != nil {
			t.Fatal(err)
		}
		answers := make(chan string, 6)
		var wg sync.WaitGroup
		defer wg.Wait()
		wait := arrivals(sh, &wg, answers)
		wait("new 1", resilience.Sheddable)
		wait("new 2", resilience.Sheddable) // the queue is full
		wait("new 3", resilience.Sheddable)
		wait("call 1", resilience.Critical) // displaces new 2
		wait("call 2", resilience.Critical) // displaces new 1
		wait("call 3", resilience.Critical) // the queue holds calls only
		held.Release()
		var got []string
		for range 6 {
			got = append(got, <-answers)
		}
		want := []string{"new 3 refused", "new 2 refused", "new 1 refused", "call 3 refused", "call 1", "call 2"}
		if !slices.Equal(got, want) {
			t.Fatalf("answers in the order %q, want %q", got, want)
		}
	})
}

// arrivals returns how a test sends sh a request: from a goroutine of its
// own (the caller waits for wg), which reports its answer to answers — the
// name when admitted (it then works 1 ms), "name refused" otherwise — and
// returns once that request is queued or answered, inside a synctest bubble.
func arrivals(sh *resilience.Shedder, wg *sync.WaitGroup, answers chan<- string) func(name string, crit resilience.Criticality) {
	return func(name string, crit resilience.Criticality) {
		wg.Go(func() {
			p, err := sh.Acquire(context.Background(), crit)
			if err != nil {
				answers <- name + " refused"
				return
			}
			answers <- name
			time.Sleep(time.Millisecond)
			p.Release()
		})
		synctest.Wait()
	}
}

// At the door, the shop's own calls (/internal/, which the gateway does not
// route) are critical: under the CPU cap they get in and shoppers' requests
// get 503 with Retry-After. With the shedding fix off, nobody is refused.
func TestTheDoorLetsTheShopsOwnCallsPassTheCPUCap(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	for _, shedding := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			set := fixes.Resilient
			if !shedding {
				set, _ = fixes.Parse("resilient,-shedding")
			}
			w := newCPUWatcher(true)
			w.busy.Store(true)
			w.offer(500*time.Millisecond, time.Millisecond, 1) // the cap comes down
			r := gin.New()
			r.Use(resilience.Shed(w.sh, resilience.InternalIsCritical("/internal/"), fixes.NewBoard(set, quiet), quiet))
			r.GET("/*path", func(c *gin.Context) { c.Status(http.StatusNoContent) })
			answers := map[string]map[int]int{"/internal/v1/users/1": {}, "/v1/products": {}}
			for range 300 {
				for path, codes := range answers {
					rec := httptest.NewRecorder()
					r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
					codes[rec.Code]++
					if rec.Code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
						t.Fatalf("%s refused without Retry-After", path)
					}
				}
				time.Sleep(time.Millisecond)
			}
			if got := answers["/internal/v1/users/1"]; got[http.StatusNoContent] != 300 {
				t.Errorf("shedding %v: the shop's own calls got %v, want all 300 served", shedding, got)
			}
			refused := answers["/v1/products"][http.StatusServiceUnavailable]
			if shedding && refused < 100 {
				t.Errorf("shedding on: %d of 300 shoppers' requests refused under the CPU cap, want at least 100", refused)
			}
			if !shedding && refused != 0 {
				t.Errorf("shedding off: %d shoppers' requests refused", refused)
			}
		})
	}
}

// The door judges the time a request spends in the service, not the time it
// waits on a dependency inside that dependency's compartment (a bulkhead, the
// database pool's gate), which bounds that wait already: a database that got
// slower must not talk the door into refusing what the pool or a cache could
// serve. The same wait outside any compartment is the service's own, and
// shrinks the limit as before.
func TestTheDoorDoesNotCountTimeInADependencysCompartment(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	slow := 80 * time.Millisecond // over the target: a database answering late
	bulkhead := resilience.NewBulkhead("postgres", 64, time.Millisecond, nil)
	for _, tt := range []struct {
		name   string
		handle func(ctx context.Context)
		shrink bool
	}{
		{"in a bulkhead", func(ctx context.Context) {
			_ = bulkhead.Do(ctx, func(context.Context) error { time.Sleep(slow); return nil })
		}, false},
		{"in the service", func(context.Context) { time.Sleep(slow) }, true},
		// Nested calls count once: a transaction holding a pool slot that
		// calls another service is out for the transaction's time, not twice
		// it; the rest is the service's.
		{"nested, then in the service", func(ctx context.Context) {
			back := resilience.Outside(ctx)
			_ = bulkhead.Do(ctx, func(context.Context) error { time.Sleep(slow); return nil })
			back()
			time.Sleep(slow)
		}, true},
	} {
		synctest.Test(t, func(t *testing.T) {
			sh := resilience.NewShedder(resilience.ShedSettings{Target: 50 * time.Millisecond, InitialLimit: 10}, nil)
			r := gin.New()
			r.Use(resilience.Shed(sh, resilience.InternalIsCritical("/internal/"), fixes.NewBoard(fixes.Resilient, quiet), quiet))
			r.GET("/", func(c *gin.Context) { tt.handle(c.Request.Context()); c.Status(http.StatusNoContent) })
			var wg sync.WaitGroup
			for range 20 { // rounds of ten at once: the limit is in use
				for range 10 {
					wg.Go(func() {
						rec := httptest.NewRecorder()
						r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
					})
				}
				wg.Wait()
			}
			got := sh.Limit()
			if tt.shrink && got >= 10 {
				t.Errorf("%s: limit %d, want it shrunk below 10", tt.name, got)
			}
			if !tt.shrink && got < 10 {
				t.Errorf("%s: limit %d, want it kept (10 or more)", tt.name, got)
			}
		})
	}
}

// A request waiting long in a dependency's compartment (half the door's
// target) lends its slot at the door back: the compartment bounds it, and the
// slot can serve a request that needs no dependency. A short call keeps it.
// Back from the compartment the request takes the slot again; released while
// a call of its own is still out (a load left to finish in the background),
// its slot is not given back twice.
func TestTheDoorLendsTheSlotOfARequestInACompartment(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	synctest.Test(t, func(t *testing.T) {
		sh := resilience.NewShedder(resilience.ShedSettings{InitialLimit: 1, MinLimit: 1, MaxLimit: 1}, nil)
		bulkhead := resilience.NewBulkhead("postgres", 8, time.Millisecond, nil)
		r := gin.New()
		r.Use(resilience.Shed(sh, resilience.InternalIsCritical("/internal/"), fixes.NewBoard(fixes.Resilient, quiet), quiet))
		r.GET("/db", func(c *gin.Context) {
			_ = bulkhead.Do(c.Request.Context(), func(context.Context) error { time.Sleep(time.Second); return nil })
			c.Status(http.StatusNoContent)
		})
		r.GET("/quick", func(c *gin.Context) {
			_ = bulkhead.Do(c.Request.Context(), func(context.Context) error { time.Sleep(20 * time.Millisecond); return nil })
			c.Status(http.StatusNoContent)
		})
		r.GET("/cached", func(c *gin.Context) { c.Status(http.StatusNoContent) })
		r.GET("/background", func(c *gin.Context) {
			back := resilience.Outside(c.Request.Context())
			go func() { time.Sleep(time.Second); back() }()
			c.Status(http.StatusNoContent)
		})
		get := func(path string) int {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			return rec.Code
		}

		var wg sync.WaitGroup
		wg.Go(func() { get("/quick") })
		time.Sleep(time.Millisecond) // /quick is in the bulkhead, briefly
		if code := get("/cached"); code != http.StatusServiceUnavailable {
			t.Fatalf("a request beside a short call, the limit 1: %d, want 503 (the short call keeps its slot)", code)
		}
		wg.Wait()

		wg.Go(func() {
			if code := get("/db"); code != http.StatusNoContent {
				t.Errorf("the request in the compartment: %d", code)
			}
		})
		time.Sleep(100 * time.Millisecond) // /db is in the bulkhead now
		if code := get("/cached"); code != http.StatusNoContent {
			t.Fatalf("a request beside one waiting in a compartment, the limit 1: %d, want it served", code)
		}
		wg.Wait()
		if n := sh.Inflight(); n != 0 {
			t.Fatalf("in flight after both: %d, want 0", n)
		}

		if code := get("/background"); code != http.StatusNoContent {
			t.Fatalf("background: %d", code)
		}
		if n := sh.Inflight(); n != 0 {
			t.Fatalf("in flight after a request released while out: %d, want 0", n)
		}
		time.Sleep(2 * time.Second) // its call comes back, after the request
		if n := sh.Inflight(); n != 0 {
			t.Fatalf("in flight after the call came back: %d, want 0", n)
		}
	})
}
