package resilience

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ShedSettings configure a Shedder. The zero value of a field means its
// default, chosen as follows.
//
//   - Target 100 ms: the latency admitted work should stay under. It is the
//     service's latency objective, which you already have; the limit adapts
//     to whatever concurrency keeps latency under it. (Gradient limiters infer
//     a target from a measured baseline instead, but under sustained queueing
//     the baseline itself creeps up, and the limit with it.) The time a
//     request waits on a dependency inside that dependency's compartment is
//     not counted (see Outside): the compartment bounds it already; and
//     once it has waited there half the Target, its slot is lent back to
//     the door until it returns.
//   - InitialLimit 20, MinLimit 2, MaxLimit 1000: start near a database
//     pool's size; never shut the door completely; never pretend to be
//     infinite.
//   - Backoff 0.9, at most once per Target: a limit that halves on one slow
//     request oscillates; ten percent per latency interval converges in a
//     second or two and does not overreact.
//   - QueueSize 16, QueueWait 5 ms: a short queue absorbs the jitter of a
//     burst (a request arriving a microsecond before a slot frees is not
//     refused), and is too short to hide an overload. A request joins the
//     queue only if a slot is expected well within QueueWait — at the k-th
//     place, the time left until the next slot frees plus k-1 gaps between
//     freed slots (see expectedWait), at most half of QueueWait (the other
//     half is margin for the spread of service times).
//     The rest is refused at once: a request that waits and is refused anyway
//     has been kept waiting for nothing. (failsafe-go's adaptive limiter
//     predicts its rejections too.) In the promo replay, without the
//     prediction a third of the refusals had waited out the queue, 5–25 ms
//     in the order service.
//   - CPUWait 0: not watched (the services set it from
//     SHED_TARGET_CPU_WAIT, 20 ms by default, and SetCPUWait changes it at
//     run time). Otherwise a ceiling on the rate of admissions keeps a CPU
//     free: see cpuRate. CPUWaitSource nil means RuntimeCPUWait.
type ShedSettings struct {
	Name          string
	Target        time.Duration
	InitialLimit  int
	MinLimit      int
	MaxLimit      int
	Backoff       float64
	QueueSize     int
	QueueWait     time.Duration
	CPUWait       time.Duration
	CPUWaitSource CPUWaitSource
}

func (s ShedSettings) withDefaults() ShedSettings {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&s.InitialLimit, 20)
	def(&s.MinLimit, 2)
	def(&s.MaxLimit, 1000)
	def(&s.QueueSize, 16)
	if s.Target <= 0 {
		s.Target = 100 * time.Millisecond
	}
	if s.Backoff <= 0 || s.Backoff >= 1 {
		s.Backoff = 0.9
	}
	if s.QueueWait <= 0 {
		s.QueueWait = 5 * time.Millisecond
	}
	if s.Name == "" {
		s.Name = "api"
	}
	if s.CPUWaitSource == nil { // even with CPUWait 0: SetCPUWait may switch it on
		s.CPUWaitSource = RuntimeCPUWait()
	}
	return s
}

// Shedder is an adaptive concurrency limit (AIMD on latency, after Netflix's
// concurrency-limits and TCP congestion control) with a short bounded queue.
//
// Admitted requests are counted; when one finishes, its latency adjusts the
// limit: over Target, the limit shrinks by Backoff (at most once per Target,
// so one burst counts once); under it, and with the limit actually in use,
// the limit grows by 1/limit, about one more slot per round trip. Requests
// beyond the limit wait in the queue for at most QueueWait if a slot is
// expected by then; the others are refused at once — in microseconds, before
// they cost anything.
//
// Why not a fixed limit: the right concurrency is capacity × latency
// (Little's law), and both change with the load, the hardware and the state
// of the database. Why not a rate limit: rates do not see that the same rate
// costs more when every request has become slower.
type Shedder struct {
	s   ShedSettings
	obs *Observer

	mu        sync.Mutex
	limit     float64
	inflight  int
	queue     []*waiter
	lastDrop  time.Time
	lastFreed time.Time
	// Moving averages of the time between two freed slots (capped at twice
	// QueueWait) and of its square, in seconds: how soon the queue moves.
	gap, gap2 float64

	// cpuRate caps the admissions a second while the process's goroutines
	// wait for a CPU (CPUWait); +Inf when they do not. The concurrency
	// limit cannot keep a CPU free: it admits until admitted work nears
	// Target, and fast work never does — a sold-out answer takes a
	// millisecond or two, so even two slots serve a thousand a second,
	// every CPU is busy, and every thread that wakes, the one that reads a
	// request only to refuse it too, waits its turn for a CPU before any
	// handler's clock starts. A rate bounds fast work as well as slow. Each
	// cpuWindow, a p99 wait over CPUWait sets the cap to Backoff times the
	// rate of work done since the last read, but not below calmShare times
	// the calm rate (see calm); a window without raises it by a twentieth,
	// and lifts it once it is twice that rate. The cap is a token bucket
	// holding cpuWindow/10 of it, and at least cpuMinBurst.
	cpuRate  *rate.Limiter
	cpuWait  atomic.Int64 // the CPUWait in force (ns; 0: not watched)
	done     int          // requests released since the last read of the CPU wait
	doneFrom time.Time    // when that count started
	cpuNext  atomic.Int64 // when to read the CPU wait next (Unix ns)
	// calm is the most requests a second finished in a window without a
	// wait lately, fading by half every calmFade; calmAt is when it was
	// last aged. calmShare times it is as far as a wait cuts the cap.
	calm   float64
	calmAt time.Time
}

type waiter struct {
	ready     chan struct{} // closed when granted or displaced
	granted   bool
	displaced bool // refused while queued, to make room for a critical call
	critical  bool
}

// Criticality says what refusing a request throws away, after the SRE book's
// "Handling Overload": a shedder refuses what costs least to refuse first.
type Criticality int

const (
	// Sheddable is a new request from outside the shop: refusing it costs
	// the client a retry, and nothing has been spent on it yet.
	Sheddable Criticality = iota
	// Critical is a call from another of the shop's services, made for a
	// request that service has already admitted: refusing it throws away
	// the work done upstream and fails that request too. The CPU cap does
	// not refuse it (its own service's cap already counted the request
	// once), and it waits at the front of the queue; if the queue is full,
	// the newest sheddable request in it is refused to make room. The
	// concurrency limit still binds: it protects the latency of everything
	// admitted.
	Critical
)

// ShedError is the answer to a refused request: an overload, 503 with
// Retry-After at the edge.
type ShedError struct{ Reason string }

func (e *ShedError) Error() string {
	return "the service is overloaded (" + e.Reason + "); try again shortly"
}
func (e *ShedError) Code() string              { return "overloaded" }
func (e *ShedError) RetryAfter() time.Duration { return time.Second }

// NewShedder returns a Shedder reporting to obs.
func NewShedder(s ShedSettings, obs *Observer) *Shedder {
	s = s.withDefaults()
	sh := &Shedder{s: s, obs: obs, limit: float64(s.InitialLimit), cpuRate: rate.NewLimiter(rate.Inf, 1)}
	sh.cpuWait.Store(int64(max(s.CPUWait, 0)))
	sh.report()
	sh.reportCPUCap()
	return sh
}

// Limit returns the current concurrency limit.
func (sh *Shedder) Limit() int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return int(sh.limit)
}

// Inflight returns how many admitted requests have not finished.
func (sh *Shedder) Inflight() int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.inflight
}

// Permit is an admitted request; Release it when the work is done.
type Permit struct {
	sh      *Shedder
	start   time.Time
	outside *outside // the request's time in dependencies' compartments (nil: not kept)
}

// Acquire admits the request, queues it briefly, or refuses it with a
// *ShedError. It returns ctx's error if ctx ends while queued.
func (sh *Shedder) Acquire(ctx context.Context, crit Criticality) (*Permit, error) {
	out, _ := ctx.Value(outsideKey{}).(*outside)
	sh.mu.Lock()
	critical := crit >= Critical
	// fix: shedding — the CPU cap refuses new work, never another service's
	// call for work already admitted.
	if sh.cpuWait.Load() > 0 && !critical && !sh.cpuRate.Allow() {
		sh.mu.Unlock()
		sh.obs.reject("shed", "cpu_busy")
		return nil, &ShedError{Reason: "no CPU to spare"}
	}
	if sh.inflight < int(sh.limit) && len(sh.queue) == 0 {
		sh.inflight++
		sh.mu.Unlock()
		return sh.permit(out), nil
	}
	place := len(sh.queue) // at the back; a critical call, ahead of every sheddable one
	if critical {
		if i := slices.IndexFunc(sh.queue, func(q *waiter) bool { return !q.critical }); i >= 0 {
			place = i
		}
	}
	// fix: shedding — a full queue refuses what costs least to refuse: a
	// new request, or, to make room for another service's call, the newest
	// new request waiting in it.
	full := len(sh.queue) >= sh.s.QueueSize
	if full && place == len(sh.queue) { // a new request, or nothing sheddable queued
		sh.mu.Unlock()
		sh.obs.reject("shed", "queue_full")
		return nil, &ShedError{Reason: "queue full"}
	}
	if sh.expectedWait(place+1) > sh.s.QueueWait/2 {
		sh.mu.Unlock()
		sh.obs.reject("shed", "no_slot_in_time")
		return nil, &ShedError{Reason: "no slot expected in time"}
	}
	if full {
		sh.displaceNewestSheddable() // behind place: place stays right
	}
	w := &waiter{ready: make(chan struct{}), critical: critical}
	sh.queue = slices.Insert(sh.queue, place, w)
	sh.mu.Unlock()
	return sh.await(ctx, w, out)
}

// await waits in the queue, as w, for a slot, at most QueueWait, and leaves
// it when the wait is over, ctx ends, or a critical call displaces w.
func (sh *Shedder) await(ctx context.Context, w *waiter, out *outside) (*Permit, error) {
	timer := time.NewTimer(sh.s.QueueWait)
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		if w.displaced {
			return nil, errDisplaced
		}
		return sh.permit(out), nil
	case <-timer.C:
		err = &ShedError{Reason: "queue wait exceeded"}
	case <-ctx.Done():
		err = ctx.Err()
	}
	sh.mu.Lock()
	switch {
	case w.granted: // a slot came at the last moment: take it
		sh.mu.Unlock()
		return sh.permit(out), nil
	case w.displaced: // out of the queue already, and counted
		sh.mu.Unlock()
		return nil, errDisplaced
	}
	defer sh.mu.Unlock()
	sh.queue = slices.DeleteFunc(sh.queue, func(q *waiter) bool { return q == w })
	sh.obs.reject("shed", "queue_timeout")
	return nil, err
}

// permit is the Permit of a request admitted with its clock out (nil: none).
// It is made outside mu: the clock's lock comes first (see Outside).
func (sh *Shedder) permit(out *outside) *Permit {
	out.admitted(sh)
	return &Permit{sh: sh, start: time.Now(), outside: out}
}

// lend gives back the slot of a request that has waited a while in a
// dependency's compartment, and lets the queue have it; reclaim takes it
// again when the request is back, over the limit if need be: its work is
// admitted already.
//
// fix: shedding — the door's slots are for work in the service itself. With
// Postgres slow in the db-latency replay, requests that held their slots
// while they waited on the database (bounded by the pool's gate already)
// filled the door, and it shed cache hits that needed no database at all:
// 13-37 % shed, 1-2 % with the slots lent. Only a call out for half the
// target lends (see Outside): lending for every quick query let the door
// admit more than the CPUs could do in the promo replay.
func (sh *Shedder) lend() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.inflight--
	sh.grantQueued()
	sh.report()
}

func (sh *Shedder) reclaim() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.inflight++
	sh.report()
}

// grantQueued admits queued requests while there are free slots. The
// caller holds mu.
func (sh *Shedder) grantQueued() {
	for len(sh.queue) > 0 && sh.inflight < int(sh.limit) {
		w := sh.queue[0]
		sh.queue = sh.queue[1:]
		w.granted = true
		sh.inflight++
		close(w.ready)
	}
}

var errDisplaced = &ShedError{Reason: "queue full, and another service's call took this place"}

// displaceNewestSheddable refuses the newest sheddable request in the queue
// (it has waited least); there is one. The caller holds mu.
func (sh *Shedder) displaceNewestSheddable() {
	for i, w := range slices.Backward(sh.queue) {
		if !w.critical {
			sh.queue = slices.Delete(sh.queue, i, i+1)
			w.displaced = true
			close(w.ready)
			sh.obs.reject("shed", "displaced")
			return
		}
	}
}

// Release ends the request and lets its latency adjust the limit: the time
// it spent in this service, that is, less the time it waited on a dependency
// inside that dependency's compartment (see Outside).
func (p *Permit) Release() {
	sh := p.sh
	now := time.Now()
	// fix: shedding — the door judges the service's own time, not the
	// database's. In the db-latency replay (Postgres 200 ms slower), counting
	// the whole time shrank the limits to their minimum: the door shed 79 %
	// of the traffic, cache hits with the rest, while the pool sat at 3-5
	// connections of 20. Leaving the gate's time to the gate: 9-31 % shed
	// (in the first 15 s, while the limits grow back), the pool full,
	// goodput 79 → 153-173 requests/s; lending the slots of the requests
	// waiting there too (see lend): 1-2 % shed, 174-176 requests/s.
	rtt := now.Sub(p.start) - p.outside.spent()
	lent := p.outside.released()
	cpuRead, cpuBusy := sh.readCPUWait(now)

	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !lent {
		sh.inflight--
	}
	sh.done++
	if cpuRead {
		sh.adjustCPURate(now, cpuBusy)
		sh.reportCPUCap() // only here does it move: not on every request
	}
	switch {
	case rtt > sh.s.Target:
		if now.Sub(sh.lastDrop) >= sh.s.Target {
			sh.limit = max(float64(sh.s.MinLimit), sh.limit*sh.s.Backoff)
			sh.lastDrop = now
		}
	case float64(sh.inflight+1) >= sh.limit/2:
		// Grow only when the limit is what holds traffic back; an idle
		// service must not talk itself into a limit it has never tested.
		sh.limit = min(float64(sh.s.MaxLimit), sh.limit+1/sh.limit)
	}
	if sh.inflight < int(sh.limit) { // a slot is free: how soon the queue moves
		if !sh.lastFreed.IsZero() {
			// Capped: a lull says nothing about how soon a slot frees under
			// load, beyond "later than the queue waits".
			g := min(now.Sub(sh.lastFreed), 2*sh.s.QueueWait).Seconds()
			sh.gap += (g - sh.gap) / 16
			sh.gap2 += (g*g - sh.gap2) / 16
		}
		sh.lastFreed = now
	}
	sh.grantQueued()
	sh.report()
}

// expectedWait is how long a request at the k-th place of the queue can
// expect to wait for a slot: the time until the next slot frees, then a gap
// for each place ahead of it. The first is not half a gap, nor a whole one:
// a request arrives at a random moment, and a random moment more likely
// falls in a long gap than in a short one (the inspection paradox), so the
// mean time left is E[gap²] / 2E[gap]. For evenly spaced slots that is half
// a gap; for slots that free in bursts — four workers finishing together,
// then nothing for 10 ms — it is most of the lull.
func (sh *Shedder) expectedWait(k int) time.Duration {
	if sh.gap <= 0 {
		return 0 // nothing measured yet: try the queue
	}
	wait := sh.gap2/(2*sh.gap) + float64(k-1)*sh.gap
	return time.Duration(wait * float64(time.Second))
}

func (sh *Shedder) report() {
	if sh.obs != nil {
		sh.obs.limit.WithLabelValues(sh.s.Name).Set(sh.limit)
		sh.obs.inflight.WithLabelValues(sh.s.Name).Set(float64(sh.inflight))
	}
}
