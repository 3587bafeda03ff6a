package telemetry

import (
	"database/sql"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-shop/stampede/pkg/web"
)

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors. Each service has its own registry rather than the global one, so
// that tests can start several services in one process.
//
// The runtime's scheduler metrics are added to the default set, above all
// go_sched_latencies_seconds: how long goroutines waited, runnable, for a
// CPU. When a service is saturated, that wait is in every request's latency
// before any handler runs, and no handler-level timer sees it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// HTTPMetrics counts and times every request by route template (never by raw
// path, which would give every order id its own series) and tracks in-flight
// requests: the first number to climb in the incident. Durations are also by
// outcome, because "how fast is a refusal" is its own question: a shed
// request that waits as long as a served one has saved nothing. Refusals are
// timed once more by the code their body names, because they are not all
// alike: a shed at the door takes microseconds, a pool_timeout the pool's
// whole wait, and only the code tells which one a slow p99 is made of.
func HTTPMetrics(reg prometheus.Registerer) gin.HandlerFunc {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total",
		Help: "HTTP requests by route, method and status code.",
	}, []string{"route", "method", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "HTTP request latency by route, method and outcome (ok, client_error, refused, server_error).",
		Buckets: DurationBuckets,
	}, []string{"route", "method", "outcome"})
	refusals := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_refusal_duration_seconds",
		Help:    "Latency of refusals (429 or 503 with Retry-After) by route and the error code of their body (overloaded, pool_timeout, ...).",
		Buckets: DurationBuckets,
	}, []string{"route", "code"})
	inFlight := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "http_requests_in_flight",
		Help: "HTTP requests being served, by route.",
	}, []string{"route"})
	reg.MustRegister(requests, duration, refusals, inFlight)

	return func(c *gin.Context) {
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		start := time.Now()
		g := inFlight.WithLabelValues(route)
		g.Inc()
		defer g.Dec()
		c.Next()
		took := time.Since(start).Seconds()
		status := c.Writer.Status()
		outcome := OutcomeOf(status, c.Writer.Header())
		requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
		duration.WithLabelValues(route, c.Request.Method, string(outcome)).Observe(took)
		if outcome == Refused {
			refusals.WithLabelValues(route, web.Code(c)).Observe(took)
		}
	}
}

// DurationBuckets are the request duration buckets, in seconds: fine below
// 10 ms, where refusals must land, and up to the 30 s a stuck request takes.
var DurationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5, 10, 30}

// Outcome is what an answer meant, for metrics and logs.
type Outcome string

const (
	OK          Outcome = "ok"           // 1xx–3xx
	ClientError Outcome = "client_error" // a 4xx the client has to fix
	Refused     Outcome = "refused"      // 429 or 503 with Retry-After: overload, come back later
	ServerError Outcome = "server_error" // any other 5xx
)

// OutcomeOf classes a response by its status and headers.
func OutcomeOf(status int, h http.Header) Outcome {
	switch {
	case (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && h.Get("Retry-After") != "":
		return Refused
	case status >= 500:
		return ServerError
	case status >= 400:
		return ClientError
	}
	return OK
}

// RegisterDBPool exports database/sql pool statistics (open, in use, idle,
// wait count, wait duration) as go_sql_* series labelled db_name.
func RegisterDBPool(reg prometheus.Registerer, name string, db *sql.DB) {
	reg.MustRegister(collectors.NewDBStatsCollector(db, name))
}

// RegisterRedisPool exports go-redis pool statistics.
func RegisterRedisPool(reg prometheus.Registerer, rdb *redis.Client) {
	reg.MustRegister(redisPoolCollector{rdb: rdb})
}

var (
	redisHits     = prometheus.NewDesc("redis_pool_hits_total", "Times a free connection was found in the pool.", nil, nil)
	redisMisses   = prometheus.NewDesc("redis_pool_misses_total", "Times a free connection was not found in the pool.", nil, nil)
	redisTimeouts = prometheus.NewDesc("redis_pool_timeouts_total", "Times a wait for a connection timed out.", nil, nil)
	redisTotal    = prometheus.NewDesc("redis_pool_connections", "Connections in the pool.", nil, nil)
	redisIdle     = prometheus.NewDesc("redis_pool_idle_connections", "Idle connections in the pool.", nil, nil)
)

type redisPoolCollector struct{ rdb *redis.Client }

func (redisPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{redisHits, redisMisses, redisTimeouts, redisTotal, redisIdle} {
		ch <- d
	}
}

func (c redisPoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.rdb.PoolStats()
	ch <- prometheus.MustNewConstMetric(redisHits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(redisMisses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(redisTimeouts, prometheus.CounterValue, float64(s.Timeouts))
	ch <- prometheus.MustNewConstMetric(redisTotal, prometheus.GaugeValue, float64(s.TotalConns))
	ch <- prometheus.MustNewConstMetric(redisIdle, prometheus.GaugeValue, float64(s.IdleConns))
}
