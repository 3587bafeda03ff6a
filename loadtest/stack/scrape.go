package stack

import (
	"context"
	"math"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one scrape of a service's /metrics: the series the report charts.
// A field is NaN when the scrape failed (the process is down or stalled).
type Sample struct {
	Goroutines   float64
	DBOpen       float64 // connections open
	DBInUse      float64 // connections in use
	DBWaits      float64 // waits for a connection so far (a counter)
	BreakersOpen float64 // breakers open or half-open
	InFlight     float64 // requests being served
}

var scrapeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Scrape reads the metrics of the admin listener at admin within timeout.
func Scrape(ctx context.Context, admin string, timeout time.Duration) Sample {
	nan := math.NaN()
	s := Sample{nan, nan, nan, nan, nan, nan}
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
	sum := func(name string, keep func(*dto.Metric) bool) float64 {
		f, ok := families[name]
		if !ok {
			return 0
		}
		total := 0.0
		for _, m := range f.GetMetric() {
			if keep != nil && !keep(m) {
				continue
			}
			switch {
			case m.GetGauge() != nil:
				total += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			}
		}
		return total
	}
	notClosed := func(m *dto.Metric) bool { return m.GetGauge().GetValue() > 0 }
	return Sample{
		Goroutines:   sum("go_goroutines", nil),
		DBOpen:       sum("go_sql_open_connections", nil),
		DBInUse:      sum("go_sql_in_use_connections", nil),
		DBWaits:      sum("go_sql_wait_count_total", nil),
		BreakersOpen: float64(count(families["breaker_state"], notClosed)),
		InFlight:     sum("http_requests_in_flight", nil),
	}
}

func count(f *dto.MetricFamily, keep func(*dto.Metric) bool) int {
	n := 0
	for _, m := range f.GetMetric() {
		if keep(m) {
			n++
		}
	}
	return n
}
