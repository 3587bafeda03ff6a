package stack

import (
	"context"
	"math"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stampede-shop/stampede/pkg/resilience"
)

// Sample is one scrape of a service's /metrics: the series the report charts.
// A field is NaN when the scrape failed (the process is down or stalled).
type Sample struct {
	Goroutines   float64
	DBOpen       float64 // connections open
	DBInUse      float64 // connections in use
	DBWaits      float64 // waits for a connection so far (a counter)
	BreakersOpen float64 // breakers open or half-open
	// Breakers is each breaker's state by name: 0 closed, 1 half-open,
	// 2 open (nil when the scrape failed).
	Breakers map[string]float64
	// Entered counts, by breaker name, how often each has entered half-open
	// and open so far (nil when the scrape failed). A breaker that opens,
	// probes and closes between two scrapes shows here, not in Breakers.
	Entered  map[string]Entries
	InFlight float64 // requests being served
	CPUCap   float64 // the shedder's ceiling on admissions a second; 0: none
	// RefusedByCode times the 429/503 refusals, as the service measured
	// them (every route), by the error code of their body: overloaded,
	// pool_timeout, ... (SumOf: all of them); nil when the scrape failed.
	RefusedByCode map[string]Histogram
	// Sched is how long the process's goroutines waited for a CPU, runnable
	// (the Go scheduler's own histogram); nil when the scrape failed.
	Sched *Histogram
}

var scrapeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Scrape reads the metrics of the admin listener at admin within timeout.
func Scrape(ctx context.Context, admin string, timeout time.Duration) Sample {
	nan := math.NaN()
	s := Sample{Goroutines: nan, DBOpen: nan, DBInUse: nan, DBWaits: nan, BreakersOpen: nan, InFlight: nan, CPUCap: nan} // what a failed scrape knows
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/metrics", nil)
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return s
	}
	sum := func(name string) float64 {
		f, ok := families[name]
		if !ok {
			return 0
		}
		total := 0.0
		for _, m := range f.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				total += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			}
		}
		return total
	}
	breakers := byLabel(families["breaker_state"], "name")
	sched := histograms(families["go_sched_latencies_seconds"], "")[""]
	return Sample{
		Goroutines:    sum("go_goroutines"),
		DBOpen:        sum("go_sql_open_connections"),
		DBInUse:       sum("go_sql_in_use_connections"),
		DBWaits:       sum("go_sql_wait_count_total"),
		BreakersOpen:  float64(notClosed(breakers)),
		Breakers:      breakers,
		Entered:       entered(families["breaker_transitions_total"]),
		InFlight:      sum("http_requests_in_flight"),
		CPUCap:        sum("shed_cpu_cap_per_second"),
		RefusedByCode: histograms(families["http_refusal_duration_seconds"], "code"),
		Sched:         &sched,
	}
}

// histograms sums the series of family f by the value of their label name:
// one histogram per value ("" for series without the label, so all of them
// when name is "").
func histograms(f *dto.MetricFamily, name string) map[string]Histogram {
	hs := map[string]Histogram{}
	for _, m := range f.GetMetric() {
		v, _ := label(m, name)
		var b Histogram
		for _, bucket := range m.GetHistogram().GetBucket() { // the text format lists +Inf too
			b.Bounds = append(b.Bounds, bucket.GetUpperBound())
			b.Counts = append(b.Counts, float64(bucket.GetCumulativeCount()))
		}
		hs[v] = hs[v].Add(b)
	}
	return hs
}

// SumOf is the histograms in hs together (empty if there are none).
func SumOf(hs map[string]Histogram) Histogram {
	var sum Histogram
	for _, h := range hs {
		sum = sum.Add(h)
	}
	return sum
}

// Histogram is a cumulative histogram as Prometheus keeps one: Counts[i]
// observations were at most Bounds[i] (seconds); the last bound is +Inf.
type Histogram struct {
	Bounds []float64
	Counts []float64
}

// Add returns h and o together. Histograms with other bounds are not added:
// one service's buckets are the same for every route.
func (h Histogram) Add(o Histogram) Histogram {
	if len(h.Bounds) == 0 {
		return Histogram{Bounds: slices.Clone(o.Bounds), Counts: slices.Clone(o.Counts)}
	}
	if !slices.Equal(h.Bounds, o.Bounds) {
		return h
	}
	sum := Histogram{Bounds: h.Bounds, Counts: slices.Clone(h.Counts)}
	for i, c := range o.Counts {
		sum.Counts[i] += c
	}
	return sum
}

// Since returns what h counted after earlier, a scrape of the same counter.
// A counter that went down was reset (the process restarted): then all of h
// is new.
func (h Histogram) Since(earlier Histogram) Histogram {
	if !slices.Equal(h.Bounds, earlier.Bounds) || len(h.Counts) == 0 || h.Counts[len(h.Counts)-1] < earlier.Counts[len(earlier.Counts)-1] {
		return h
	}
	d := Histogram{Bounds: h.Bounds, Counts: slices.Clone(h.Counts)}
	for i, c := range earlier.Counts {
		d.Counts[i] -= c
	}
	return d
}

// Total is the number of observations.
func (h Histogram) Total() float64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// Quantile returns the upper bound, in seconds, of the bucket that holds the
// q-quantile: the quantile is at most that. It does not interpolate, so a
// claim "p99 ≤ 10 ms" read from it is never optimistic. NaN if empty.
func (h Histogram) Quantile(q float64) float64 {
	total := h.Total()
	if total == 0 {
		return math.NaN()
	}
	for i, c := range h.Counts {
		if c >= q*total {
			return h.Bounds[i]
		}
	}
	return math.Inf(1)
}

// byLabel is the gauges of family f by the value of their label name.
func byLabel(f *dto.MetricFamily, name string) map[string]float64 {
	m := map[string]float64{}
	for _, g := range f.GetMetric() {
		if v, ok := label(g, name); ok {
			m[v] = g.GetGauge().GetValue()
		}
	}
	return m
}

// label is the value of metric m's label name, and whether it has one.
func label(m *dto.Metric, name string) (string, bool) {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue(), true
		}
	}
	return "", false
}

// Entries counts a breaker's entries into half-open and open (counters).
type Entries struct{ HalfOpen, Open float64 }

// entered reads the breakers' transitions (breaker_transitions_total, by
// name, from and to) as entries by breaker name.
func entered(f *dto.MetricFamily) map[string]Entries {
	m := map[string]Entries{}
	for _, c := range f.GetMetric() {
		name, _ := label(c, "name")
		to, _ := label(c, "to")
		e := m[name]
		switch to {
		case "half-open":
			e.HalfOpen += c.GetCounter().GetValue()
		case "open":
			e.Open += c.GetCounter().GetValue()
		}
		m[name] = e
	}
	return m
}

// Charted is a breaker's state over the second between two scrapes, as the
// report draws it: resilience.BreakerHalfOpen if it probed in that second —
// entered half-open, whatever it went to next — else resilience.BreakerOpen
// if it opened in it, else the state the second scrape read. The states
// scraped alone miss a probe that fails at once: the breaker is open again
// before the next scrape. Counters below was are a restarted process's,
// counted from zero.
func Charted(state float64, was, now Entries) float64 {
	since := func(now, was float64) float64 {
		if now < was {
			return now
		}
		return now - was
	}
	switch {
	case since(now.HalfOpen, was.HalfOpen) > 0:
		return resilience.BreakerHalfOpen
	case since(now.Open, was.Open) > 0:
		return resilience.BreakerOpen
	}
	return state
}

// notClosed counts the breakers open or half-open.
func notClosed(states map[string]float64) int {
	n := 0
	for _, state := range states {
		if state != resilience.BreakerClosed {
			n++
		}
	}
	return n
}
