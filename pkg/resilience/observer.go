package resilience

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Observer is where the policies report: one set of Prometheus series and
// one logger per service. A nil *Observer reports nothing, for tests and
// benchmarks that do not care.
type Observer struct {
	log         *slog.Logger
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	limit       *prometheus.GaugeVec
	inflight    *prometheus.GaugeVec
	cpuCap      *prometheus.GaugeVec
	retries     *prometheus.CounterVec
	stale       prometheus.Counter
}

// NewObserver registers the resilience series on reg.
func NewObserver(reg prometheus.Registerer, log *slog.Logger) *Observer {
	o := &Observer{
		log: log,
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "breaker_state", Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, []string{"name"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "breaker_transitions_total", Help: "Circuit breaker state changes.",
		}, []string{"name", "from", "to"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resilience_rejected_total", Help: "Requests refused before doing work, by policy and reason.",
		}, []string{"policy", "reason"}),
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shed_concurrency_limit", Help: "The adaptive concurrency limit in force.",
		}, []string{"name"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shed_inflight", Help: "Requests admitted and not yet finished.",
		}, []string{"name"}),
		cpuCap: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shed_cpu_cap_per_second",
			Help: "The ceiling on admissions a second while goroutines wait for a CPU (SHED_TARGET_CPU_WAIT); 0: none.",
		}, []string{"name"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retry_attempts_total", Help: "Retries, by whether the retry budget allowed them.",
		}, []string{"name", "allowed"}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fallback_stale_served_total", Help: "Last good copies served because loading failed.",
		}),
	}
	reg.MustRegister(o.state, o.transitions, o.rejected, o.limit, o.inflight, o.cpuCap, o.retries, o.stale)
	return o
}

func (o *Observer) reject(policy, reason string) {
	if o != nil {
		o.rejected.WithLabelValues(policy, reason).Inc()
	}
}

func (o *Observer) servedStale() {
	if o != nil {
		o.stale.Inc()
	}
}

func (o *Observer) logger() *slog.Logger {
	if o == nil || o.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.log
}
