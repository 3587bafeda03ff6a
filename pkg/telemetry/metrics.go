package telemetry

import (
	"database/sql"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
)

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors. Each service has its own registry rather than the global one, so
// that tests can start several services in one process.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// HTTPMetrics counts and times every request by route template (never by raw
// path, which would give every order id its own series) and tracks in-flight
// requests: the first number to climb in the incident.
func HTTPMetrics(reg prometheus.Registerer) gin.HandlerFunc {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total",
		Help: "HTTP requests by route, method and status code.",
	}, []string{"route", "method", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "HTTP request latency by route and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "method"})
	inFlight := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "http_requests_in_flight",
		Help: "HTTP requests being served, by route.",
	}, []string{"route"})
	reg.MustRegister(requests, duration, inFlight)

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
		requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
		duration.WithLabelValues(route, c.Request.Method).Observe(time.Since(start).Seconds())
	}
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
