package replay

import (
	"maps"
	"math"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/loadtest/load"
	"github.com/stampede-shop/stampede/loadtest/report"
	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
)

// The headline's outage and recovery, from the order API's answers second
// by second: down is when fewer than half of them are a good answer or a
// fast refusal; recovered is the first second after the spike from which 90 %
// are good for three seconds running. The claims "back within 5 s" and
// "still down 10 s after the spike" are judged on these two numbers.
func TestHeadlineOutageAndRecovery(t *testing.T) {
	sc, err := scenario.Load("promo")
	if err != nil {
		t.Fatal(err)
	}
	sc = sc.Scaled(0.5) // warm-up 0–5 s, spike 5–45 s, cool-down 45–55 s
	from, to := sc.Window()
	if from != 5*time.Second || to != 45*time.Second || sc.Length() != 55*time.Second {
		t.Fatalf("promo at half: window %v–%v of %v; the cases below assume 5s–45s of 55s", from, to, sc.Length())
	}
	good := load.Result{Kind: scenario.OrderHot, Class: load.OK, Latency: 20 * time.Millisecond}
	refusedFast := load.Result{Kind: scenario.OrderHot, Class: load.Shed, Latency: time.Millisecond}
	gone := load.Result{Kind: scenario.OrderHot, Class: load.Refused, Latency: time.Millisecond}
	hung := load.Result{Kind: scenario.OrderHot, Class: load.Timeout, Latency: 5 * time.Second}
	for _, tc := range []struct {
		name     string
		answer   func(second int) load.Result // the order API's answers in that second, ten of them
		outage   int
		recovery float64 // -1: not within the run
		goodput  float64 // % of a capacity of 10 requests/s, in the spike
	}{
		{"up throughout", func(int) load.Result { return good }, 0, 0, 100},
		{"refusing fast is being up", func(s int) load.Result {
			if s >= 5 && s < 45 {
				return refusedFast
			}
			return good
		}, 0, 0, 0},
		{"killed in the spike, back 2 s after it", func(s int) load.Result {
			if s >= 5 && s < 47 {
				return gone
			}
			return good
		}, 42, 2, 0},
		{"hanging, then never back", func(s int) load.Result {
			if s >= 5 {
				return hung
			}
			return good
		}, 50, -1, 0},
		{"back for only two seconds at the end", func(s int) load.Result {
			if s >= 5 && s < 53 {
				return gone
			}
			return good
		}, 48, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &load.Recorder{}
			for s := range 55 {
				for i := range 10 {
					r := tc.answer(s)
					r.Due = time.Duration(s)*time.Second + time.Duration(i)*100*time.Millisecond
					rec.Add(r)
				}
			}
			h := headline(sc, 10, rec, report.Profile{}, nil)
			if h.OutageS != tc.outage || h.RecoveryS != tc.recovery || h.GoodputPct != tc.goodput {
				t.Fatalf("outage %d s, recovery %v s, goodput %v %%; want %d, %v and %v",
					h.OutageS, h.RecoveryS, h.GoodputPct, tc.outage, tc.recovery, tc.goodput)
			}
		})
	}
}

// The services' refusals are judged in the spike's window, all codes
// together and each code apart: the seconds outside the window count in
// neither, and a code seen only there is not named.
func TestHeadlineRefusalsByCode(t *testing.T) {
	sc, err := scenario.Load("promo")
	if err != nil {
		t.Fatal(err)
	}
	sc = sc.Scaled(0.5) // spike 5–45 s of 55 s
	bounds := []float64{0.0005, 0.1, 0.25, math.Inf(1)}
	at := func(bucket int, n float64) stack.Histogram { // n observations in one bucket, cumulative
		h := stack.Histogram{Bounds: bounds, Counts: make([]float64, len(bounds))}
		for i := bucket; i < len(bounds); i++ {
			h.Counts[i] = n
		}
		return h
	}
	seconds := make([]timed, 55)
	for s := range seconds {
		byCode := map[string]stack.Histogram{"overloaded": at(0, 100)}
		switch s {
		case 5: // the spike's onset: a pool's wait
			byCode["pool_timeout"] = at(2, 3)
		case 50: // the cool-down, outside the window
			byCode["starting"] = at(3, 1000)
		}
		seconds[s].refusedByCode = byCode
	}
	h := headline(sc, 10, &load.Recorder{}, report.Profile{}, seconds)
	want := map[string]report.Refusals{"overloaded": {Count: 4000, P99: 0.5}, "pool_timeout": {Count: 3, P99: 250}}
	if !maps.Equal(h.RefusalsServiceByCode, want) {
		t.Errorf("refusals by code = %v, want %v", h.RefusalsServiceByCode, want)
	}
	if h.P99RefusalService != 0.5 { // 3 slow of 4,003: below the 1 %
		t.Errorf("p99 of all refusals = %v, want 0.5", h.P99RefusalService)
	}
}
