package stack

import (
	"context"
	"errors"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/telemetry"
	"github.com/stampede-shop/stampede/pkg/web"
)

func hist(counts ...float64) Histogram {
	return Histogram{Bounds: []float64{0.001, 0.01, math.Inf(1)}, Counts: counts}
}

// The refusals of one second are the difference of two scrapes, and a
// restarted process (its counters back at zero) counts from zero.
func TestHistogramSinceAddQuantile(t *testing.T) {
	before, after := hist(10, 10, 10), hist(110, 209, 210)
	got := after.Since(before)
	if got.Counts[0] != 100 || got.Counts[1] != 199 || got.Total() != 200 {
		t.Fatalf("since: %v", got.Counts)
	}
	if restarted := hist(3, 3, 3).Since(after); restarted.Total() != 3 {
		t.Fatalf("after a restart: %v, want the new process's counts", restarted.Counts)
	}
	if first := after.Since(Histogram{}); first.Total() != 210 {
		t.Fatalf("the first scrape counts everything: %v", first.Counts)
	}
	// p50 of 200 is within the first bucket (100 ≤ 1 ms), p99 in the second.
	if q := got.Quantile(0.5); q != 0.001 {
		t.Errorf("p50 = %v, want 0.001", q)
	}
	if q := got.Quantile(0.99); q != 0.01 {
		t.Errorf("p99 = %v, want 0.01", q)
	}
	if q := hist(0, 0, 1).Quantile(0.99); !math.IsInf(q, 1) {
		t.Errorf("beyond the last bucket: %v, want +Inf", q)
	}
	if q := (Histogram{}).Quantile(0.99); !math.IsNaN(q) {
		t.Errorf("empty: %v, want NaN", q)
	}
	sum := hist(1, 2, 3).Add(hist(10, 20, 30))
	if sum.Counts[0] != 11 || sum.Total() != 33 {
		t.Errorf("add: %v", sum.Counts)
	}
	if other := (Histogram{Bounds: []float64{1, math.Inf(1)}, Counts: []float64{5, 5}}); sum.Add(other).Total() != 33 {
		t.Error("histograms with other bounds must not be added")
	}
}

// Scrape reads the refusals a service timed, every route together and by
// the code of their body, from the metrics the services really export.
func TestScrapeReadsRefusals(t *testing.T) {
	gin.SetMode(gin.TestMode)
	reg := telemetry.NewRegistry()
	r := gin.New()
	r.Use(telemetry.HTTPMetrics(reg))
	refuse := func(c *gin.Context) { c.Header("Retry-After", "1"); c.Status(http.StatusServiceUnavailable) }
	r.GET("/a", refuse)
	r.GET("/b", func(c *gin.Context) {
		web.Abort(c, nil, &web.Error{Status: http.StatusServiceUnavailable, Code: "pool_timeout", Message: "busy", RetryAfter: time.Second})
	})
	r.GET("/ok", func(c *gin.Context) { c.Status(http.StatusOK) })
	for _, path := range []string{"/a", "/a", "/b", "/ok", "/ok"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	s := Scrape(context.Background(), srv.URL, time.Second)
	if s.RefusedByCode == nil {
		t.Fatal("no refusals read")
	}
	refused := SumOf(s.RefusedByCode)
	if got := refused.Total(); got != 3 {
		t.Fatalf("refusals = %v, want 3 (two routes)", got)
	}
	if len(refused.Bounds) != len(telemetry.DurationBuckets)+1 || !math.IsInf(refused.Bounds[len(refused.Bounds)-1], 1) {
		t.Fatalf("bounds %v", refused.Bounds)
	}
	byCode := map[string]float64{}
	for code, h := range s.RefusedByCode {
		byCode[code] = h.Total()
	}
	if want := map[string]float64{"": 2, "pool_timeout": 1}; !maps.Equal(byCode, want) {
		t.Errorf("refusals by code = %v, want %v", byCode, want)
	}
	if q := refused.Quantile(0.99); q > 0.01 {
		t.Errorf("p99 of in-process refusals = %v s", q)
	}
	if s.Sched == nil || len(s.Sched.Bounds) < 5 || s.Sched.Total() == 0 {
		t.Errorf("the scheduler's latency histogram was not read: %+v", s.Sched)
	}
}

// Scrape reads the shedder's CPU cap from the series it exports: none (0)
// while the goroutines do not wait for a CPU, the cap once they do.
func TestScrapeReadsTheCPUCap(t *testing.T) {
	reg := telemetry.NewRegistry()
	var busy atomic.Bool
	sh := resilience.NewShedder(resilience.ShedSettings{Name: "order", CPUWait: time.Millisecond,
		CPUWaitSource: func() (time.Duration, uint64) { // what runtime/metrics would say
			if busy.Load() {
				return 5 * time.Millisecond, 100
			}
			return 100 * time.Microsecond, 100
		}}, resilience.NewObserver(reg, nil))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	serve := func(d time.Duration) { // a request a millisecond for d
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if p, err := sh.Acquire(context.Background(), resilience.Sheddable); err == nil {
				p.Release()
			}
		}
	}

	serve(250 * time.Millisecond)
	if got := Scrape(context.Background(), srv.URL, time.Second).CPUCap; got != 0 {
		t.Fatalf("CPUs free: CPUCap %v, want 0 (none)", got)
	}
	busy.Store(true)
	serve(350 * time.Millisecond) // the first window over the target only starts the count
	got, want := Scrape(context.Background(), srv.URL, time.Second).CPUCap, sh.CPUCap()
	if want <= 0 || got != want {
		t.Fatalf("goroutines waiting: scraped CPUCap %v, the shedder's %v; want the same, above 0", got, want)
	}
}

// Each breaker's state is read by name from a real Observer's series: the
// report draws one line per breaker that left the closed state.
func TestScrapeReadsEachBreakersState(t *testing.T) {
	reg := telemetry.NewRegistry()
	obs := resilience.NewObserver(reg, nil)
	board := fixes.NewBoard(fixes.Resilient, nil)
	reads := resilience.NewBreaker[int](resilience.BreakerSettings{Name: "postgres_reads", MinRequests: 2}, board, obs)
	resilience.NewBreaker[int](resilience.BreakerSettings{Name: "user_service"}, board, obs)
	down := errors.New("connection refused")
	for range 3 {
		_, _ = reads.Do(context.Background(), func(context.Context) (int, error) { return 0, down })
	}
	if reads.State() != "open" {
		t.Fatalf("the breaker is %s after three failures", reads.State())
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	got := Scrape(context.Background(), srv.URL, time.Second)
	if want := map[string]float64{"postgres_reads": 2, "user_service": 0}; !maps.Equal(got.Breakers, want) || got.BreakersOpen != 1 {
		t.Fatalf("breakers %v, %v open; want %v, 1 open", got.Breakers, got.BreakersOpen, want)
	}
	if want := map[string]Entries{"postgres_reads": {Open: 1}}; !maps.Equal(got.Entered, want) {
		t.Fatalf("entries %v, want %v", got.Entered, want)
	}
}

// A breaker is charted by what it did in the second, not only by the state
// it happened to be in when scraped: a probe that fails at once leaves it
// open by the next scrape, and the chart must still show the probe.
func TestABreakerIsChartedByWhatItDidInTheSecond(t *testing.T) {
	for _, tt := range []struct {
		name     string
		state    float64
		was, now Entries
		want     float64
	}{
		{"closed all along", 0, Entries{}, Entries{}, 0},
		{"open all along", 2, Entries{Open: 1}, Entries{Open: 1}, 2},
		{"opened in the second", 2, Entries{}, Entries{Open: 1}, 2},
		{"opened and probed before an earlier scrape, closed since", 0, Entries{HalfOpen: 1, Open: 1}, Entries{HalfOpen: 1, Open: 1}, 0},
		{"probed and failed: open again at the scrape", 2, Entries{HalfOpen: 1, Open: 2}, Entries{HalfOpen: 2, Open: 3}, 1},
		{"probed and closed", 0, Entries{Open: 1}, Entries{HalfOpen: 1, Open: 1}, 1},
		{"half-open at the scrape", 1, Entries{Open: 1}, Entries{HalfOpen: 1, Open: 1}, 1},
		{"restarted, then opened: counters below the last scrape's", 2, Entries{HalfOpen: 4, Open: 5}, Entries{Open: 1}, 2},
		{"restarted, closed", 0, Entries{HalfOpen: 4, Open: 5}, Entries{}, 0},
	} {
		if got := Charted(tt.state, tt.was, tt.now); got != tt.want {
			t.Errorf("%s: charted %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A failed scrape (the process is down) knows nothing: every number is NaN,
// which the report draws as a gap, never a zero that looks like a reading.
// Checked field by field, so that a field added later cannot default to 0.
func TestAFailedScrapeKnowsNothing(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nobody listens at its address any more
	s := reflect.ValueOf(Scrape(context.Background(), srv.URL, time.Second))
	for i := range s.NumField() {
		f, name := s.Field(i), s.Type().Field(i).Name
		switch f.Kind() {
		case reflect.Float64:
			if !math.IsNaN(f.Float()) {
				t.Errorf("%s = %v, want NaN", name, f.Float())
			}
		case reflect.Pointer, reflect.Map:
			if !f.IsNil() {
				t.Errorf("%s is set", name)
			}
		default:
			t.Errorf("%s: a %s; say here what a failed scrape leaves in it", name, f.Kind())
		}
	}
}
