// Package report writes what a replay found: summary.json (everything, for
// tools), summary.md (the headline table, for people and pull requests) and
// report.html (the same numbers with charts, self-contained: inline SVG, no
// scripts, no network).
package report

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/stampede-shop/stampede/loadtest/stack"
)

// Summary is one replay: a scenario run under one or more profiles.
type Summary struct {
	Scenario    string    `json:"scenario"`
	Description string    `json:"description"`
	Started     time.Time `json:"started"`
	Machine     string    `json:"machine"`
	// Capacity is the highest rate (requests/s) at which the resilient
	// profile kept p99 ≤ 200 ms, measured on this machine before the run
	// (Calibrated), or the rate given with -capacity instead.
	Capacity   float64 `json:"capacity_rps"`
	Calibrated bool    `json:"calibrated"`
	// Retries is how many times a shopper tries a failed request again (0:
	// never); every attempt is offered load.
	Retries  int       `json:"shopper_retries"`
	Phases   []Phase   `json:"phases"`
	Window   [2]int    `json:"window_s"` // the seconds the verdicts judge
	Faults   []Fault   `json:"faults,omitempty"`
	Profiles []Profile `json:"profiles"`
}

// CapacityBasis says where the capacity came from, for the report's readers:
// every rate and every "% of capacity" in it is relative to it.
func (s *Summary) CapacityBasis() string {
	if s.Calibrated {
		return "the highest rate at which the resilient profile kept p99 ≤ 200 ms, calibrated before the run"
	}
	return "given with -capacity, not measured in this run"
}

// Phase is one phase of the scenario, in seconds from the start.
type Phase struct {
	Name  string  `json:"name"`
	From  int     `json:"from_s"`
	To    int     `json:"to_s"`
	Rate  float64 `json:"rate_rps"`
	Times float64 `json:"rate_x_capacity"`
}

// Fault is a fault injected during the run, in seconds from the start.
type Fault struct {
	Kind string `json:"kind"`
	From int    `json:"from_s"`
	To   int    `json:"to_s"`
}

// Profile is the scenario under one set of fixes.
type Profile struct {
	Name       string           `json:"name"`
	Fixes      string           `json:"fixes"`
	Headline   Headline         `json:"headline"`
	Invariants stack.Invariants `json:"invariants"`
	Broken     []string         `json:"broken_invariants"`
	Verdicts   []Verdict        `json:"verdicts"`
	Timeline   []Point          `json:"timeline"`
	Events     []stack.Event    `json:"supervisor_events"`
	Restarts   map[string]int   `json:"restarts"`
	Supervised bool             `json:"supervised"` // the replay ran and supervised the services (not --target)
	Dropped    int64            `json:"dropped_by_generator"`
	Notes      []string         `json:"notes,omitempty"` // what a reader must know to read the numbers right
}

// Headline is a profile's row of the headline table.
type Headline struct {
	OfferedRPS float64 `json:"offered_rps"`    // during the judged window
	RetryPct   float64 `json:"retry_pct"`      // of it, shoppers' second or later attempts, %
	GoodputRPS float64 `json:"goodput_rps"`    // good answers per second in the window
	GoodputPct float64 `json:"goodput_pct"`    // GoodputRPS as % of capacity
	P50Good    float64 `json:"p50_good_ms"`    // latency of good answers in the window
	P99Good    float64 `json:"p99_good_ms"`    //
	P99Refusal float64 `json:"p99_refusal_ms"` // latency of 429/503 refusals in the window, as the shoppers saw it
	// P99RefusalService is the same, as the services timed it: from the
	// request entering the service's middleware to the answer (an upper
	// bound: the top of the histogram bucket). The difference is the time
	// spent in the network, the kernel's queues and the shoppers' own process
	// — on one machine, mostly waiting for a CPU. 0: no refusals; -1 (+Inf
	// before JSON): beyond the last bucket.
	P99RefusalService float64 `json:"p99_refusal_service_ms"`
	// RefusalsServiceByCode is the same refusals by the error code their
	// bodies named (overloaded, pool_timeout, ...): which kind of refusal a
	// slow p99 is made of, and how many of them there were.
	RefusalsServiceByCode map[string]Refusals `json:"refusals_service_by_code,omitempty"`
	// P99SchedOrder is how long the order service's goroutines waited,
	// runnable, for a CPU (p99, an upper bound from the Go runtime's coarse
	// buckets): time inside the service that no handler's timer sees.
	P99SchedOrder float64 `json:"p99_sched_order_ms"`
	// P99RefusalSent is P99Refusal timed from when each refusal's request
	// was sent rather than when it was due, and P99Lag how late the
	// requests were sent (p99, all of them): the shoppers' own wait for a
	// CPU, which a shopper with a machine of their own would not have.
	P99RefusalSent float64 `json:"p99_refusal_sent_ms"`
	P99Lag         float64 `json:"p99_lag_ms"`
	// CPUBusyPct is how busy the machine's CPUs were in the window, and
	// CPUWaitingPct the share of it during which some runnable task — a
	// service's thread, Postgres, a shopper — had to wait for a CPU (Linux's
	// pressure stall information), both averaged over its seconds; -1: not
	// known on this system. Every wait there is time on the shoppers' clock
	// that the services' clocks may not see.
	CPUBusyPct    float64            `json:"cpu_busy_pct"`
	CPUWaitingPct float64            `json:"cpu_waiting_pct"`
	ErrorRate     map[string]float64 `json:"error_rate_pct"` // % of offered requests in the window, by class
	// Unavailable counts the window's unavailable answers (503s other than
	// the door's) by the error code they carried: "timeout" (a request's
	// deadline), "pool_timeout", "dependency_unavailable" (a breaker open)…
	Unavailable map[string]int `json:"unavailable_by_code,omitempty"`
	Stale       int            `json:"stale_served"` // answers served from a fallback copy, whole run
	// OrderReads is how many times the shoppers read one of their own
	// orders in the window, and OrderReadsServed how many of those reads
	// got a good answer: what a Postgres outage leaves of them is what the
	// order service kept in its cache.
	OrderReads       int     `json:"order_reads"`
	OrderReadsServed int     `json:"order_reads_served"`
	OutageS          int     `json:"outage_s"`   // seconds the order API answered < 50 % well
	RecoveryS        float64 `json:"recovery_s"` // after the window ends, until the order API is back; -1: not within the run
	Restarts         int     `json:"restarts"`
	Oversold         int     `json:"oversold_units"`
	Missing          int     `json:"missing_orders"`
	EventsLost       int     `json:"events_lost"`
	EventsTwice      int     `json:"events_applied_twice"`
	OrdersPlaced     int     `json:"orders_placed"`
}

// Verdict is one expectation of the profile, and whether it held.
type Verdict struct {
	Claim string `json:"claim"`
	Held  bool   `json:"held"`
	Seen  string `json:"seen"`
}

// Refusals are the refusals of one error code in a window, as the services
// timed them.
type Refusals struct {
	Count int     `json:"count"`
	P99   float64 `json:"p99_ms"` // an upper bound; -1 (+Inf before JSON): beyond the last bucket
}

// Point is one second of a profile's run.
type Point struct {
	T          int            `json:"t"`
	Offered    int            `json:"offered"`
	Retries    int            `json:"retries"` // of Offered, shoppers' second or later attempts
	Good       int            `json:"good"`
	ByClass    map[string]int `json:"by_class"`
	P50        float64        `json:"p50_ms"`
	P99        float64        `json:"p99_ms"`
	OrderOK    float64        `json:"order_api_ok"` // fraction of order API requests answered well
	Stale      int            `json:"stale"`
	DBInUse    float64        `json:"db_in_use"`  // order service, NaN: no scrape
	DBWaits    float64        `json:"db_waits"`   // waits for a connection this second, order service
	Goroutines float64        `json:"goroutines"` // order service
	Breakers   float64        `json:"breakers"`   // open or half-open, all services
	// BreakerStates is what each breaker did this second, by service/name:
	// 0 closed, 1 probing (it went half-open), 2 open (stack.Charted; a
	// breaker missing: its service was not scraped).
	BreakerStates map[string]float64 `json:"breaker_states,omitempty"`
	// CPUCap is the order service's ceiling on admissions a second while its
	// goroutines wait for a CPU (NaN, -1 in JSON: none, or no scrape).
	CPUCap float64 `json:"cpu_cap_order_per_s"`
	// RefusedP99Service is the p99 of the 429/503 refusals the services
	// timed this second (NaN: none); RefusedP99Shoppers the same refusals
	// as the shoppers timed them, from when each was due to the answer.
	RefusedP99Service  float64  `json:"refused_p99_service_ms"`
	RefusedP99Shoppers float64  `json:"refused_p99_shoppers_ms"`
	SchedP99Order      float64  `json:"sched_p99_order_ms"` // p99 wait for a CPU, order service's goroutines
	LagP99             float64  `json:"lag_p99_ms"`         // p99 of how late the shoppers sent this second's requests (NaN: none)
	CPUBusy            float64  `json:"cpu_busy_pct"`       // the machine's CPUs, NaN: not known here
	CPUWaiting         float64  `json:"cpu_waiting_pct"`    // share of the second some runnable task waited for a CPU
	InFlight           int64    `json:"generator_in_flight"`
	Restarts           int      `json:"restarts"` // so far, all services
	Down               []string `json:"down,omitempty"`
}

// Write writes summary.json, summary.md and report.html into dir.
func Write(dir string, s *Summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(sanitize(s), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), data, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(Markdown(s)), 0o644); err != nil {
		return err
	}
	html, err := HTML(s)
	if err != nil {
		return fmt.Errorf("report.html: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "report.html"), html, 0o644)
}

// sanitize returns a copy of s that JSON can encode: NaN (no scrape that
// second, nothing to time) and infinities become -1.
func sanitize(s *Summary) *Summary {
	c := *s
	c.Profiles = make([]Profile, len(s.Profiles))
	for i, p := range s.Profiles {
		p.Timeline = append([]Point(nil), p.Timeline...)
		for j := range p.Timeline {
			pt := &p.Timeline[j]
			for _, f := range []*float64{&pt.DBInUse, &pt.DBWaits, &pt.Goroutines, &pt.Breakers, &pt.CPUCap, &pt.RefusedP99Service, &pt.RefusedP99Shoppers, &pt.SchedP99Order, &pt.LagP99, &pt.CPUBusy, &pt.CPUWaiting} {
				if math.IsNaN(*f) || math.IsInf(*f, 0) {
					*f = -1
				}
			}
		}
		for _, f := range []*float64{&p.Headline.P99RefusalService, &p.Headline.P99SchedOrder} {
			if math.IsInf(*f, 1) {
				*f = -1 // beyond the last bucket
			}
		}
		p.Headline.RefusalsServiceByCode = maps.Clone(p.Headline.RefusalsServiceByCode) // s keeps its own
		for code, r := range p.Headline.RefusalsServiceByCode {
			if math.IsInf(r.P99, 1) {
				r.P99 = -1
				p.Headline.RefusalsServiceByCode[code] = r
			}
		}
		c.Profiles[i] = p
	}
	return &c
}
