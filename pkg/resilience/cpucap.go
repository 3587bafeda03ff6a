package resilience

// The Shedder's CPU cap: a ceiling on admissions a second while the
// process's goroutines wait for a CPU (ShedSettings.CPUWait; the Shedder's
// cpuRate says why the concurrency limit alone cannot keep a CPU free).

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// cpuWindow is how often the CPU wait is read, and the stretch of time it
// sums up; cpuMinSamples is how many goroutines must have run in it for its
// p99 to say anything (at rest, one slow wake-up would be the p99).
const (
	cpuWindow     = 100 * time.Millisecond
	cpuMinSamples = 50
	cpuMinRate    = 10 // admissions a second: never shut the door completely
	// cpuMinBurst is the least the cap's bucket holds: a bucket of one
	// token at 100/s would refuse any two requests that merely arrive
	// within 10 ms of each other.
	cpuMinBurst = 10
	// calmFade is how soon the cap forgets, by half, a rate it served
	// without a wait: long enough to outlast a neighbour's burst on the
	// CPUs, short enough that a wait the service's own work causes brings
	// the cap down within seconds.
	calmFade = 5 * time.Second
	// calmShare is how much of that rate a wait leaves the cap: the floor
	// of its cuts. It trades goodput for tail where refusing a request
	// costs about what serving a cheap one does. On a machine held to 1.2
	// CPUs, at 304 requests/s: no floor, goodput 61–142 % of capacity (p99
	// good 140–167 ms); 0.9, 126–186 % and 182–249 ms (over 200 in four
	// runs of six); 0.5, 90–132 % and 151–179 ms (loadtest/MEASUREMENTS.md).
	calmShare = 0.5
)

// CPUCap returns the ceiling on admissions a second that CPUWait has set,
// and 0 while there is none (CPUWait off, or goroutines not waiting).
func (sh *Shedder) CPUCap() float64 {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.cpuCapOrZero()
}

// CPUWait returns the CPU wait the cap steers to, 0 when it is off.
func (sh *Shedder) CPUWait() time.Duration { return time.Duration(sh.cpuWait.Load()) }

// SetCPUWait changes CPUWait at run time, as the admin API's PUT
// /admin/shedding does; 0 switches the cap off and lifts it. (The replay
// measures a running shop's capacity without the cap, as it does its own.)
func (sh *Shedder) SetCPUWait(d time.Duration) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d = max(d, 0)
	if was := time.Duration(sh.cpuWait.Swap(int64(d))); (was > 0) == (d > 0) {
		return // on and on, or off and off: the cap goes on as it was
	}
	// Off, or on again after a while off: what was counted meanwhile says
	// nothing about the next window, and no cap holds until one is read.
	sh.cpuRate.SetLimit(rate.Inf)
	sh.done, sh.doneFrom = 0, time.Time{}
	sh.reportCPUCap()
}

// cpuCapOrZero is CPUCap for a caller that holds mu.
func (sh *Shedder) cpuCapOrZero() float64 {
	if c := sh.cpuCap(); !math.IsInf(c, 1) {
		return c
	}
	return 0
}

// cpuCap is the cap on admissions a second, +Inf when there is none
// (rate.Inf is the largest float64, not +Inf). The caller holds mu.
func (sh *Shedder) cpuCap() float64 {
	if l := sh.cpuRate.Limit(); l != rate.Inf {
		return float64(l)
	}
	return math.Inf(1)
}

// readCPUWait reads the CPU wait if CPUWait is set and cpuWindow has passed
// since the last read, and says whether it read it and whether the wait was
// over CPUWait. Only the caller that moves cpuNext on reads, outside the
// Shedder's lock.
func (sh *Shedder) readCPUWait(now time.Time) (read, busy bool) {
	target := time.Duration(sh.cpuWait.Load())
	if target <= 0 {
		return false, false
	}
	next := sh.cpuNext.Load()
	if now.UnixNano() < next || !sh.cpuNext.CompareAndSwap(next, now.Add(cpuWindow).UnixNano()) {
		return false, false
	}
	p99, n := sh.s.CPUWaitSource()
	return true, n >= cpuMinSamples && p99 > target
}

// adjustCPURate moves the cap on admissions after a window in which the
// goroutines did (busy) or did not wait for a CPU.
func (sh *Shedder) adjustCPURate(now time.Time, busy bool) {
	done := math.Inf(1) // the first read: nothing counted yet
	if !sh.doneFrom.IsZero() {
		done = float64(sh.done) / max(now.Sub(sh.doneFrom), time.Millisecond).Seconds()
	}
	sh.done, sh.doneFrom = 0, now
	sh.calm *= math.Exp2(-now.Sub(sh.calmAt).Seconds() / calmFade.Seconds())
	if !busy && !math.IsInf(done, 1) {
		sh.calm = max(sh.calm, done)
	}
	sh.calmAt = now
	was := sh.cpuCap()
	capped := was
	switch {
	case busy:
		// fix: shedding — goroutines queue for a CPU: admit less, so that
		// admitted work and refusals alike find one sooner. But not less
		// than calmShare times a rate served lately without a wait: the
		// wait may be the neighbours' (the other processes on the machine),
		// or the refusals' own, and cutting admissions shortens neither.
		// Where refusing cost about what a cheap answer does, the cuts alone
		// ratcheted the cap down to a few hundred a second while the CPUs
		// stayed as busy; calmShare says how the floor trades that goodput
		// against the tail, as measured.
		capped = max(cpuMinRate, min(capped, done)*sh.s.Backoff, sh.calm*calmShare)
	case capped > 2*done:
		capped = math.Inf(1) // the cap holds nothing back
	default:
		capped *= 1.05
	}
	if math.IsInf(capped, 1) {
		sh.cpuRate.SetLimitAt(now, rate.Inf)
		return
	}
	burst := max(cpuMinBurst, int(capped*cpuWindow.Seconds()/10))
	if math.IsInf(was, 1) { // a cap that engages starts with its bucket full
		sh.cpuRate = rate.NewLimiter(rate.Limit(capped), burst)
		return
	}
	sh.cpuRate.SetLimitAt(now, rate.Limit(capped))
	sh.cpuRate.SetBurstAt(now, burst)
}

// reportCPUCap exports the CPU cap (0: none). The caller holds mu, or owns
// the Shedder still.
func (sh *Shedder) reportCPUCap() {
	if sh.obs != nil {
		sh.obs.cpuCap.WithLabelValues(sh.s.Name).Set(sh.cpuCapOrZero())
	}
}
