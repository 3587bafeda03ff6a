package replay

import (
	"math"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/loadtest/load"
	"github.com/stampede-shop/stampede/loadtest/stack"
)

// Answers can come in after the last scrape. Their second has no samples (a
// gap in the charts), but the restarts stand: on the chart the naive shop's
// three restarts once fell to 0 in the last second.
func TestTimelineAfterTheLastScrape(t *testing.T) {
	rec := &load.Recorder{}
	for i := range 3 {
		rec.Add(load.Result{Due: time.Duration(i) * time.Second, Class: load.OK, Latency: 5 * time.Millisecond})
	}
	rec.Add(load.Result{Due: time.Second, Class: load.Shed, Latency: 7 * time.Millisecond, Lag: 3 * time.Millisecond})
	rec.Add(load.Result{Due: time.Second + time.Millisecond, Class: load.OK, Latency: 5 * time.Millisecond, Retry: true})
	seen := &scrapes{
		order: []stack.Sample{{DBInUse: 4, Goroutines: 90, DBWaits: math.NaN()},
			{DBInUse: 20, Goroutines: 900, DBWaits: math.NaN(), Breakers: map[string]float64{"order/user_service": 2}}},
		restarts: []int{0, 3},
		down:     [][]string{nil, {"order"}},
		inflight: []int64{1, 2},
		timed:    make([]timed, 2),
	}
	pts := seen.timeline(rec)
	if len(pts) != 3 {
		t.Fatalf("%d points, want 3", len(pts))
	}
	if p := pts[1]; p.Restarts != 3 || p.DBInUse != 20 || p.Goroutines != 900 || len(p.Down) != 1 || p.BreakerStates["order/user_service"] != 2 {
		t.Fatalf("the last scraped second: %+v", p)
	}
	if pts[1].RefusedP99Shoppers != 7 || !math.IsNaN(pts[0].RefusedP99Shoppers) {
		t.Errorf("shoppers' refusals p99: %v in the second with one refusal in 7 ms, %v in one with none (want a gap)",
			pts[1].RefusedP99Shoppers, pts[0].RefusedP99Shoppers)
	}
	if pts[1].LagP99 != 3 || pts[0].LagP99 != 0 {
		t.Errorf("shoppers' lag p99: %v in the second with a request sent 3 ms late, %v in one sent on time", pts[1].LagP99, pts[0].LagP99)
	}
	if pts[1].Retries != 1 || pts[1].Offered != 3 || pts[0].Retries != 0 {
		t.Errorf("retries: %d of %d offered in the second with one, %d in one with none", pts[1].Retries, pts[1].Offered, pts[0].Retries)
	}
	last := pts[2]
	if last.Restarts != 3 {
		t.Errorf("after the last scrape: %d restarts, want the 3 counted", last.Restarts)
	}
	if !math.IsNaN(last.DBInUse) || !math.IsNaN(last.Goroutines) || last.Good != 1 || !math.IsNaN(last.RefusedP99Shoppers) || last.BreakerStates != nil {
		t.Errorf("after the last scrape: %+v; want the answers and no samples", last)
	}
}

// The progress line names the breakers that were not closed, as the chart
// draws them, and says so when it knows nothing.
func TestProgressNamesTheBreakers(t *testing.T) {
	for _, tt := range []struct {
		name string
		sm   stack.Sample
		want string
	}{
		{"none scraped", stack.Sample{BreakersOpen: math.NaN()}, "–"},
		{"all closed", stack.Sample{Breakers: map[string]float64{"order/user_service": 0}}, "closed"},
		{"open and probing", stack.Sample{BreakersOpen: 1, Breakers: map[string]float64{
			"search/postgres_reads": 1, "order/postgres_reads": 2, "order/user_service": 0}},
			"order/postgres_reads open, search/postgres_reads probing"},
	} {
		if got := breakerStates(tt.sm); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
