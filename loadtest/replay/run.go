package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/stampede-shop/stampede/loadtest/load"
	"github.com/stampede-shop/stampede/loadtest/report"
	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
	"github.com/stampede-shop/stampede/pkg/fixes"
)

// Options are what a replay runs.
type Options struct {
	Scenario *scenario.Scenario
	Profiles []Profile
	Capacity float64 // requests/s; 0: calibrate first
	Bins     map[string]string
	Deps     stack.Deps
	Products int           // catalog size
	Shoppers int           // pre-registered users
	Patience time.Duration // the client's timeout
	Retries  int           // a shopper's retries after a failure; -1 for none
	Out      string        // the report's directory
	Progress io.Writer     // live progress; nil for none
	Probe    stack.Probe
	// Target, if set, is a shop that runs already (the compose stack): the
	// replay switches its fixes through the admin API instead of starting
	// a shop of its own per profile, and does not supervise it.
	Target *stack.Remote
}

func (o *Options) defaults() {
	if o.Products == 0 {
		o.Products = 10_000
	}
	if o.Shoppers == 0 {
		o.Shoppers = 40
	}
	if o.Patience == 0 {
		o.Patience = 5 * time.Second
	}
	switch o.Retries {
	case 0:
		o.Retries = 1
	case -1:
		o.Retries = 0
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Probe.Period == 0 {
		o.Probe = stack.KubeletProbe
	}
}

// Run runs the replay and returns its summary; the report is written by the
// caller (report.Write). A profile that breaks an invariant is in the summary,
// with Broken set.
func Run(ctx context.Context, o Options) (s *report.Summary, err error) {
	o.defaults()
	if o.Target != nil {
		// The calibration switches a running shop's CPU cap off; however
		// the run ends, the shop gets its own back.
		defer func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if rerr := o.Target.SetCPUWait(ctx, ""); rerr != nil {
				err = errors.Join(err, fmt.Errorf("putting back the target's CPU cap: %w", rerr))
			}
		}()
	}
	sc := o.Scenario
	s = &report.Summary{Scenario: sc.Name, Description: sc.Description, Started: time.Now(),
		Machine: stack.Machine()}
	if o.Capacity <= 0 {
		c, err := Calibrate(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("calibration: %w", err)
		}
		o.Capacity, s.Calibrated = c, true
	}
	s.Capacity, s.Retries = o.Capacity, o.Retries
	var at time.Duration
	for _, p := range sc.Phases {
		s.Phases = append(s.Phases, report.Phase{Name: p.Name, From: secs(at), To: secs(at + p.Duration.Duration),
			Rate: p.Rate * o.Capacity, Times: p.Rate})
		at += p.Duration.Duration
	}
	from, to := sc.Window()
	s.Window = [2]int{secs(from), secs(to)}
	for _, f := range sc.Faults {
		s.Faults = append(s.Faults, report.Fault{Kind: string(f.Kind), From: secs(f.At.Duration), To: secs(f.At.Duration + f.For.Duration)})
	}
	for _, p := range o.Profiles {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		pr, err := runProfile(ctx, o, p)
		if err != nil {
			return s, fmt.Errorf("profile %s: %w", p.Name, err)
		}
		pr.Verdicts = judge(sc, p, pr)
		s.Profiles = append(s.Profiles, pr)
	}
	return s, nil
}

func secs(d time.Duration) int { return int(d / time.Second) }

// inFlightBound is how many requests the generator lets wait for an answer at
// once. It must hold a naive spike: three times capacity, every request
// waiting out the shoppers' patience, plus retries — 10,000 and more on a
// 2-core machine. Under a lower bound the generator stops sending when the
// bound is reached and sends again only as answers come back, so the load
// follows the shop (a closed loop, what an open model must not be), and the
// starved pool has fewer waiters. With 8,000 the naive shop's liveness probe
// then won a connection often enough that a restarted process, usually
// killed 9–14 s after it started, once lasted 28 s, and the kills no longer
// fell where the scenario's timing expects them. Every request holds a
// socket here and one in the service, so the bound stays under the
// open-file limit, which Go raises to the hard limit at start.
func inFlightBound() int64 {
	const want = 15_000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < want+2_000 {
		return max(int64(lim.Cur)-2_000, 1_000) // #nosec G115 -- a file limit fits in an int64
	}
	return want
}

// prepare starts a fresh shop for profile p (or switches the target's fixes
// to p's) and registers the shoppers.
func prepare(ctx context.Context, o Options, p Profile, onEvent func(stack.Event)) (stack.Shop, *load.Shop, error) {
	var st stack.Shop
	if o.Target != nil {
		if err := o.Target.SetFixes(ctx, p.Fixes); err != nil {
			return nil, nil, fmt.Errorf("switching the target's fixes: %w", err)
		}
		// Of the environment, only the CPU cap can change on a running
		// shop (the calibration's "off"); "" puts back the shop's own.
		for name := range p.Env {
			if name != cpuWaitEnv {
				return nil, nil, fmt.Errorf("profile %s sets %s, which a running shop cannot change", p.Name, name)
			}
		}
		if err := o.Target.SetCPUWait(ctx, p.Env[cpuWaitEnv]); err != nil {
			return nil, nil, fmt.Errorf("switching the target's CPU cap: %w", err)
		}
		st = o.Target
	} else {
		logs := filepath.Join(o.Out, "logs", p.Name)
		if err := os.MkdirAll(logs, 0o755); err != nil {
			return nil, nil, err
		}
		native, err := stack.StartNative(ctx, o.Deps, o.Bins, stack.Options{Fixes: p.Fixes, Env: p.Env, Products: o.Products,
			LogDir: logs, OnEvent: onEvent, Probe: o.Probe,
			ProxyPostgres: o.Scenario.Injects(scenario.PostgresDown) || o.Scenario.Injects(scenario.SlowPostgres),
			ProxyNATS:     o.Scenario.Injects(scenario.NATSDown),
			ProxyRedis:    o.Scenario.Injects(scenario.RedisDown),
			ProxyUsers:    o.Scenario.Injects(scenario.SlowUsers)})
		if err != nil {
			return nil, nil, err
		}
		st = native
	}
	shop := &load.Shop{Client: load.NewClient(), Timeout: o.Patience, Retries: o.Retries, Products: o.Products,
		Targets: load.Targets{User: st.API("user"), Search: st.API("search"), Order: st.API("order")}}
	if err := shop.Register(ctx, o.Shoppers); err != nil {
		closeShop(st, shop)
		return nil, nil, fmt.Errorf("registering shoppers: %w", err)
	}
	return st, shop, nil
}

// closeShop ends a shop whose run is over. The shoppers leave first, closing
// the connections they keep open: http.Server.Shutdown lets an idle
// connection go at once, but waits for one that has not yet carried a request
// until it is 5 s old — and an HTTP client dials such spares under load. The
// search service's graceful shutdown took 3–4 s instead of 1 for them.
func closeShop(st stack.Shop, shop *load.Shop) {
	shop.Client.CloseIdleConnections()
	st.Close()
}

// runProfile runs the scenario once under p, on a shop of its own.
func runProfile(ctx context.Context, o Options, p Profile) (report.Profile, error) {
	sc := o.Scenario
	pr := report.Profile{Name: p.Name, Fixes: p.Fixes}
	// note is something the profile's numbers do not say by themselves:
	// it goes above its verdicts, and to the terminal now.
	note := func(s string) {
		pr.Notes = append(pr.Notes, s)
		fmt.Fprintf(o.Progress, "    ⚠ %s\n", s)
	}
	events := &eventLog{progress: o.Progress}
	how := "starting a fresh shop"
	if o.Target != nil {
		how = "switching the running shop's fixes"
	}
	fmt.Fprintf(o.Progress, "\n▶ %s · %s (FIXES=%s): %s\n", sc.Name, p.Name, p.Fixes, how)
	st, shop, err := prepare(ctx, o, p, events.add)
	if err != nil {
		return pr, err
	}
	defer closeShop(st, shop)
	if sold := soldOutBefore(ctx, o); sold != "" {
		note(sold)
	}

	rec := &load.Recorder{}
	gen := &load.Generator{MaxInFlight: inFlightBound()}
	start := time.Now()
	faultsFailed := scheduleFaults(st, sc.Faults, o.Progress)
	samples := sample(ctx, st, rec, gen, sc, p, o)
	gen.Run(ctx, start, sc.Length(), func(t time.Duration) float64 {
		ph, _ := sc.At(t)
		return ph.Rate * o.Capacity
	}, func(ctx context.Context, due time.Duration) {
		ph, _ := sc.At(due)
		shop.Send(ctx, load.Pick(sc.MixOf(ph)), start, due, rec.Add)
	})
	points, secs := samples()
	if err := faultsFailed(); err != nil {
		return pr, fmt.Errorf("the scenario's faults: %w", err)
	}

	if err := checkInvariants(ctx, st, shop, o, p, &pr, note); err != nil {
		return pr, err
	}
	pr.Restarts = st.Restarts()
	pr.Supervised = pr.Restarts != nil
	pr.Events = events.all()
	pr.Dropped = gen.Dropped()
	pr.Timeline = points
	pr.Headline = headline(sc, o.Capacity, rec, pr, secs)
	return pr, nil
}

// eventLog keeps what the supervisor saw during a run (starts, kills,
// restarts) and prints each as it comes, but the services' first starts.
type eventLog struct {
	progress io.Writer
	mu       sync.Mutex
	events   []stack.Event
}

func (l *eventLog) add(e stack.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	first := len(l.events) <= len(stack.Services) // the first starts are no news
	l.mu.Unlock()
	if !first {
		fmt.Fprintf(l.progress, "    %s %s: %s %s\n", e.At.Format("15:04:05"), e.Service, e.What, e.Detail)
	}
}

func (l *eventLog) all() []stack.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]stack.Event(nil), l.events...)
}

// checkInvariants checks, once the load has stopped, what must never
// happen — in the shop's databases and its event consumers, against every
// order the shoppers saw acknowledged — and records what broke on pr.
func checkInvariants(ctx context.Context, st stack.Shop, shop *load.Shop, o Options, p Profile, pr *report.Profile, note func(string)) error {
	fmt.Fprintf(o.Progress, "    checking invariants…\n")
	var acked []string
	for _, a := range shop.Acknowledged() {
		acked = append(acked, a.ID)
	}
	inv, err := st.Check(ctx, acked, o.Products, 30*time.Second)
	if err != nil {
		return fmt.Errorf("invariants: %w", err)
	}
	pr.Invariants = inv
	pr.Broken = inv.Broken(p.Has(fixes.Outbox))
	if inv.EventsPending > 0 {
		note(fmt.Sprintf("%d order.created events were still in the outbox when the run ended, unsent (the order service's relay had not run since): sent when it does, not lost", inv.EventsPending))
	}
	return nil
}

// soldOutBefore is a note for a profile that begins on a running shop whose
// hot SKU is sold out already: a running shop keeps its data, so what an
// earlier profile (or run) sold is gone for this one, and "nothing oversold"
// is not put to the test. Without -target-db nothing can be read, and the
// invariants fail the run anyway.
func soldOutBefore(ctx context.Context, o Options) string {
	if o.Target == nil || !o.Scenario.Sends(scenario.OrderHot) {
		return ""
	}
	if left, err := o.Target.HotStock(ctx); err != nil || left > 0 {
		return ""
	}
	return "the hot SKU was sold out before this profile began (a running shop keeps its data from earlier profiles " +
		"and runs): nothing could be oversold, and a shop with the hot_row fix answered its orders from the Redis " +
		"gate, cheaply. For a fair comparison run each profile on a fresh stack (docker compose down -v), or use make replay"
}

// headline computes a profile's row of the headline table.
func headline(sc *scenario.Scenario, capacity float64, rec *load.Recorder, pr report.Profile, seconds []timed) report.Headline {
	from, to := sc.Window()
	w := rec.Window(from, to)
	inWindow := timed{refusedByCode: map[string]stack.Histogram{}}
	var busy, waiting []float64
	for i := secs(from); i < secs(to) && i < len(seconds); i++ {
		for code, r := range seconds[i].refusedByCode {
			inWindow.refusedByCode[code] = inWindow.refusedByCode[code].Add(r)
		}
		inWindow.sched = inWindow.sched.Add(seconds[i].sched)
		busy, waiting = append(busy, seconds[i].cpuBusy), append(waiting, seconds[i].cpuWaiting)
	}
	h := report.Headline{OfferedRPS: w.OfferedRate(), GoodputRPS: w.Goodput(), P50Good: w.GoodP(0.5), P99Good: w.GoodP(0.99),
		P99Refusal: w.RefusalP(0.99), P99RefusalService: nz(p99Millis(stack.SumOf(inWindow.refusedByCode))), P99SchedOrder: nz(p99Millis(inWindow.sched)),
		P99RefusalSent: w.RefusalSentP(0.99), P99Lag: w.LagP(0.99), CPUBusyPct: mean(busy), CPUWaitingPct: mean(waiting),
		RefusalsServiceByCode: map[string]report.Refusals{}, ErrorRate: map[string]float64{}, Unavailable: w.Unavailable, RecoveryS: -1,
		Oversold: pr.Invariants.OversoldUnits, Missing: pr.Invariants.Missing, EventsLost: pr.Invariants.EventsLost,
		EventsTwice: pr.Invariants.EventsTwice, OrdersPlaced: pr.Invariants.Stored}
	for code, r := range inWindow.refusedByCode {
		if n := int(r.Total()); n > 0 {
			h.RefusalsServiceByCode[code] = report.Refusals{Count: n, P99: p99Millis(r)}
		}
	}
	h.OrderReads, h.OrderReadsServed = w.ByKind[scenario.ReadOrder], w.GoodByKind[scenario.ReadOrder]
	h.GoodputPct = 100 * h.GoodputRPS / capacity
	if w.Offered > 0 {
		h.RetryPct = 100 * float64(w.Retries) / float64(w.Offered)
	}
	for _, c := range load.Classes {
		if !c.Good() {
			h.ErrorRate[string(c)] = 100 * w.Share(c)
		}
	}
	for _, n := range pr.Restarts {
		h.Restarts += n
	}
	all := rec.Window(0, sc.Length())
	h.Stale = all.Stale
	end := secs(sc.Length())
	for i := range end {
		if rec.Window(time.Duration(i)*time.Second, time.Duration(i+1)*time.Second).OrderAPIDown() {
			h.OutageS++
		}
	}
	// Recovered: the first second after the window from which the order API
	// answers at least 90 % of its requests well for three seconds running.
	for i := secs(to); i+3 <= end; i++ {
		if rec.Window(time.Duration(i)*time.Second, time.Duration(i+3)*time.Second).OrderHealth() >= 0.9 {
			h.RecoveryS = float64(i - secs(to))
			break
		}
	}
	return h
}

// mean is the mean of the known values (not NaN); -1 if none is known.
func mean(vs []float64) float64 {
	sum, n := 0.0, 0
	for _, v := range vs {
		if !math.IsNaN(v) {
			sum, n = sum+v, n+1
		}
	}
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}
