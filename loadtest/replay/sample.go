package replay

// The seconds of a run: the services scraped once a second, the live
// progress line, and the timeline the report charts.

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/stampede-shop/stampede/loadtest/load"
	"github.com/stampede-shop/stampede/loadtest/report"
	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
	"github.com/stampede-shop/stampede/pkg/resilience"
)

// timed is what was timed in one second: the services' refusals by the
// code of their body (all services together; stack.SumOf: every code), the
// waits for a CPU of the order service's goroutines, and the machine's CPUs.
type timed struct {
	refusedByCode map[string]stack.Histogram
	sched         stack.Histogram
	// The machine's CPUs this second, in percent (NaN: not known here):
	// busy, and the time some runnable task had to wait for one.
	cpuBusy, cpuWaiting float64
}

// sample scrapes the services every second while the run goes on and prints
// the live progress line; the function it returns stops it and returns the
// timeline, and what the services timed, second by second.
func sample(ctx context.Context, st stack.Shop, rec *load.Recorder, gen *load.Generator,
	sc *scenario.Scenario, p Profile, o Options) func() ([]report.Point, []timed) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	sm := &sampler{st: st, gen: gen, last: map[string]counters{}}
	// The first scrape is taken now, so that a shop that ran before
	// (--target) counts from here.
	for _, svc := range stack.Services {
		sm.scrape(ctx, svc, time.Second, nil)
	}
	sm.cpu = stack.ReadCPU()
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			order, restarts := sm.second(ctx)
			progress(o.Progress, sc, p, rec, gen, i, order, restarts)
		}
	}()
	return func() ([]report.Point, []timed) {
		cancel()
		<-done
		return sm.seen.timeline(rec), sm.seen.timed
	}
}

// sampler is what sample keeps between seconds: the counters at each
// service's last scrape, the CPUs' times at the last second, and what it
// has seen so far.
type sampler struct {
	st   stack.Shop
	gen  *load.Generator
	last map[string]counters
	cpu  stack.CPUTimes
	seen scrapes
}

// counters are a service's cumulative counters at a scrape: the histograms,
// and the breakers' entries into each state.
type counters struct {
	refusedByCode map[string]stack.Histogram
	sched         stack.Histogram
	entered       map[string]stack.Entries
}

// scrape reads a service's metrics and, into into (nil: only remember
// them), what it timed since its last scrape; its breakers' states become
// what each did since then, probes too.
func (s *sampler) scrape(ctx context.Context, svc string, timeout time.Duration, into *timed) stack.Sample {
	sm := stack.Scrape(ctx, s.st.Admin(svc), timeout)
	if sm.RefusedByCode == nil {
		return sm
	}
	was := s.last[svc]
	if into != nil {
		for code, h := range sm.RefusedByCode {
			into.refusedByCode[code] = into.refusedByCode[code].Add(h.Since(was.refusedByCode[code]))
		}
		if svc == "order" {
			into.sched = sm.Sched.Since(was.sched)
		}
		for name, state := range sm.Breakers {
			sm.Breakers[name] = stack.Charted(state, was.entered[name], sm.Entered[name])
		}
	}
	s.last[svc] = counters{refusedByCode: sm.RefusedByCode, sched: *sm.Sched, entered: sm.Entered}
	return sm
}

// second takes one second's scrapes and records them: the order service's
// sample, with every service's breakers in it, and the restarts so far,
// which it also returns for the progress line.
func (s *sampler) second(ctx context.Context) (stack.Sample, int) {
	this := timed{refusedByCode: map[string]stack.Histogram{}}
	cpuNow := stack.ReadCPU()
	this.cpuBusy, this.cpuWaiting = cpuNow.Since(s.cpu)
	s.cpu = cpuNow
	order := s.scrape(ctx, "order", 800*time.Millisecond, &this)
	breakers, states := order.BreakersOpen, map[string]float64{}
	for name, state := range order.Breakers {
		states["order/"+name] = state
	}
	for _, svc := range []string{"user", "search"} {
		sm := s.scrape(ctx, svc, 300*time.Millisecond, &this)
		if !math.IsNaN(sm.BreakersOpen) {
			breakers = nz(breakers) + sm.BreakersOpen
		}
		for name, state := range sm.Breakers {
			states[svc+"/"+name] = state
		}
	}
	order.BreakersOpen, order.Breakers = breakers, states
	total, gone := 0, []string(nil)
	if restarts := s.st.Restarts(); restarts != nil { // only a supervised shop has a count to show
		up := s.st.Up()
		for svc, n := range restarts {
			total += n
			if !up[svc] {
				gone = append(gone, svc)
			}
		}
	}
	s.seen.order = append(s.seen.order, order)
	s.seen.restarts = append(s.seen.restarts, total)
	s.seen.down = append(s.seen.down, gone)
	s.seen.inflight = append(s.seen.inflight, s.gen.InFlight())
	s.seen.timed = append(s.seen.timed, this)
	return order, total
}

// scrapes is what sample read, second by second: the order service's
// sample, the restarts so far (all services), the services down, the
// requests in flight, and what was timed.
type scrapes struct {
	order    []stack.Sample
	restarts []int
	down     [][]string
	inflight []int64
	timed    []timed
}

// timeline joins the shoppers' record with the scrapes, one point a second.
// A second the services were not scraped in (answers that came after the
// last scrape) has no samples (NaN: a gap in the charts), but its count of
// restarts is the last one: a count does not fall back to 0.
func (s *scrapes) timeline(rec *load.Recorder) []report.Point {
	var pts []report.Point
	prevWaits := math.NaN()
	rec.Each(func(i int, t load.Totals) {
		pt := report.Point{T: i, Offered: t.Offered, Retries: t.Retries, Good: t.Good(), ByClass: map[string]int{},
			P50: t.GoodP(0.5), P99: t.GoodP(0.99), OrderOK: t.OrderHealth(), Stale: t.Stale,
			DBInUse: math.NaN(), DBWaits: math.NaN(), Goroutines: math.NaN(), Breakers: math.NaN(), CPUCap: math.NaN(),
			RefusedP99Shoppers: math.NaN(), LagP99: math.NaN(), CPUBusy: math.NaN(), CPUWaiting: math.NaN()}
		if t.Refusals() > 0 { // none: a gap in the chart, not a refusal in 0 ms
			pt.RefusedP99Shoppers = t.RefusalP(0.99)
		}
		if t.Offered > 0 {
			pt.LagP99 = t.LagP(0.99)
		}
		for c, n := range t.ByClass {
			pt.ByClass[string(c)] = n
		}
		switch n := len(s.order); {
		case i < n:
			o := s.order[i]
			pt.DBInUse, pt.Goroutines, pt.Breakers, pt.BreakerStates = o.DBInUse, o.Goroutines, o.BreakersOpen, o.Breakers
			if o.CPUCap > 0 { // 0: no cap; a gap in the chart, not a cap at zero
				pt.CPUCap = o.CPUCap
			}
			if !math.IsNaN(o.DBWaits) && !math.IsNaN(prevWaits) && o.DBWaits >= prevWaits {
				pt.DBWaits = o.DBWaits - prevWaits
			}
			prevWaits = o.DBWaits
			pt.Restarts, pt.Down, pt.InFlight = s.restarts[i], s.down[i], s.inflight[i]
			tm := s.timed[i]
			pt.RefusedP99Service, pt.SchedP99Order = p99Millis(stack.SumOf(tm.refusedByCode)), p99Millis(tm.sched)
			pt.CPUBusy, pt.CPUWaiting = tm.cpuBusy, tm.cpuWaiting
		case n > 0:
			pt.Restarts = s.restarts[n-1]
		}
		pts = append(pts, pt)
	})
	return pts
}

// p99Millis is the p99 of h in ms (an upper bound); NaN if h is empty.
func p99Millis(h stack.Histogram) float64 { return 1000 * h.Quantile(0.99) }

func nz(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// progress prints one line a second: phase, offered rate, goodput, p99,
// errors by class, breakers, restarts.
func progress(w io.Writer, sc *scenario.Scenario, p Profile, rec *load.Recorder, gen *load.Generator, i int, order stack.Sample, restarts int) {
	t := rec.Window(time.Duration(i)*time.Second, time.Duration(i+1)*time.Second)
	ph, _ := sc.At(time.Duration(i) * time.Second)
	var errs []string
	for _, c := range load.Classes {
		if n := t.ByClass[c]; n > 0 && !c.Good() {
			errs = append(errs, fmt.Sprintf("%s %d", c, n))
		}
	}
	if len(errs) == 0 {
		errs = []string{"none"}
	}
	db := "–"
	if !math.IsNaN(order.DBInUse) {
		db = fmt.Sprintf("%.0f", order.DBInUse)
	}
	fmt.Fprintf(w, "  %-9s %-10s %3ds │ offered %5d/s │ good %5d/s │ p99 %8s │ db in use %3s │ restarts %d │ in flight %5d │ breakers %s │ errors: %s\n",
		p.Name, ph.Name, i, t.Offered, t.Good(), report.Millis(t.GoodP(0.99)), db, restarts, gen.InFlight(), breakerStates(order), strings.Join(errs, ", "))
}

// breakerStates names the breakers that were not closed this second, by
// service/name, in the words of the report's chart: "closed" if none, "–"
// if no service could be scraped.
func breakerStates(sm stack.Sample) string {
	if math.IsNaN(sm.BreakersOpen) {
		return "–"
	}
	var named []string
	for _, name := range slices.Sorted(maps.Keys(sm.Breakers)) {
		switch sm.Breakers[name] {
		case resilience.BreakerHalfOpen:
			named = append(named, name+" probing")
		case resilience.BreakerOpen:
			named = append(named, name+" open")
		}
	}
	if len(named) == 0 {
		return "closed"
	}
	return strings.Join(named, ", ")
}
