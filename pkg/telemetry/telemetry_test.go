package telemetry_test

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/stampede-shop/stampede/pkg/telemetry"
	"github.com/stampede-shop/stampede/pkg/web"
)

// A call made with the client carries the caller's trace to the callee.
func TestHTTPClientPropagatesTraceContext(t *testing.T) {
	shutdown, err := telemetry.SetupTracing(context.Background(), "test", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())

	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("traceparent") }))
	defer srv.Close()

	ctx, span := otel.Tracer("test").Start(context.Background(), "caller")
	defer span.End()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := telemetry.HTTPClient(time.Second).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tp := <-got
	want := span.SpanContext().TraceID().String()
	if len(tp) != 55 || tp[3:35] != want {
		t.Fatalf("traceparent %q does not carry trace %s", tp, want)
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("no span in the caller's context")
	}
}

// Every answer lands in one outcome; a 429 or 503 is a refusal only when it
// says when to come back, otherwise it is an error like any other 5xx.
func TestOutcomeOf(t *testing.T) {
	retry := http.Header{"Retry-After": {"1"}}
	for _, tt := range []struct {
		status int
		h      http.Header
		want   telemetry.Outcome
	}{
		{200, nil, telemetry.OK},
		{201, retry, telemetry.OK},
		{304, nil, telemetry.OK},
		{400, nil, telemetry.ClientError},
		{404, nil, telemetry.ClientError},
		{409, nil, telemetry.ClientError},
		{429, retry, telemetry.Refused},
		{429, nil, telemetry.ClientError},
		{503, retry, telemetry.Refused},
		{503, nil, telemetry.ServerError},
		{500, retry, telemetry.ServerError},
		{504, nil, telemetry.ServerError},
	} {
		if got := telemetry.OutcomeOf(tt.status, tt.h); got != tt.want {
			t.Errorf("OutcomeOf(%d, %v) = %s, want %s", tt.status, tt.h, got, tt.want)
		}
	}
}

// Durations are recorded by route and outcome, so a refusal's latency can be
// read apart from a success's.
func TestHTTPMetricsTimesByOutcome(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := gin.New()
	r.Use(telemetry.HTTPMetrics(reg))
	r.GET("/x/:id", func(c *gin.Context) {
		if c.Param("id") == "busy" {
			c.Header("Retry-After", "1")
			c.Status(http.StatusServiceUnavailable)
			return
		}
		c.Status(http.StatusOK)
	})
	for _, id := range []string{"1", "2", "busy"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x/"+id, nil))
	}
	want := map[string]uint64{"ok": 2, "refused": 1}
	if got := observed(t, reg, "http_request_duration_seconds", "outcome", map[string]string{"route": "/x/:id", "method": "GET"}); !maps.Equal(got, want) {
		t.Errorf("durations by outcome = %v, want %v", got, want)
	}
}

// Refusals are timed again by the code their body names, so that a slow
// p99 of refusals says whether the door or a pool's wait made it; answers
// that are not refusals are not in that histogram.
func TestHTTPMetricsTimesRefusalsByCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := gin.New()
	r.Use(telemetry.HTTPMetrics(reg))
	r.GET("/x/:id", func(c *gin.Context) {
		switch c.Param("id") {
		case "shed":
			web.Abort(c, nil, overloaded{}) // a web.Overload, as the shedder's error is
		case "pool":
			web.Abort(c, nil, &web.Error{Status: http.StatusServiceUnavailable, Code: "pool_timeout", Message: "busy", RetryAfter: time.Second})
		case "limit":
			web.Abort(c, nil, &web.Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "slow down", RetryAfter: time.Second})
		case "bare": // a refusal written without Abort: no code to name
			c.Header("Retry-After", "1")
			c.Status(http.StatusServiceUnavailable)
		case "gone":
			web.Abort(c, nil, web.ErrNotFound)
		default:
			c.Status(http.StatusOK)
		}
	})
	for _, id := range []string{"1", "shed", "pool", "pool", "limit", "bare", "gone"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x/"+id, nil))
	}
	want := map[string]uint64{"overloaded": 1, "pool_timeout": 2, "rate_limited": 1, "": 1}
	if got := observed(t, reg, "http_refusal_duration_seconds", "code", map[string]string{"route": "/x/:id"}); !maps.Equal(got, want) {
		t.Errorf("refusals by code = %v, want %v", got, want)
	}
}

// observed counts the observations of histogram family name in reg by the
// value of their label by; every series must carry the labels in each.
func observed(t *testing.T, reg *prometheus.Registry, name, by string, each map[string]string) map[string]uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for l, v := range each {
				if labels[l] != v {
					t.Errorf("unexpected labels %v", labels)
				}
			}
			got[labels[by]] += m.GetHistogram().GetSampleCount()
		}
	}
	return got
}

type overloaded struct{}

func (overloaded) Error() string             { return "too busy" }
func (overloaded) Code() string              { return "overloaded" }
func (overloaded) RetryAfter() time.Duration { return time.Second }
