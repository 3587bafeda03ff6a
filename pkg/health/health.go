// Package health answers the orchestrator's three questions, and answers them
// differently on purpose:
//
//   - /livez — is this process able to make progress? It never touches a
//     dependency: a slow database must not get a healthy process killed. That
//     is exactly how the incident turned a slow row lock into an outage.
//   - /readyz — should traffic be sent here now? Dependencies, start-up and
//     drain state, each dependency checked with its own short timeout. A
//     dependency the service has a fallback for does not fail it (with the
//     probes fix): the replicas share their dependencies, so a Redis outage
//     would take every replica out of the load balancer at once, and the
//     fallbacks would serve nobody.
//   - /healthz — the same as /readyz, for people: JSON detail per dependency.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/fixes"
)

// Check probes one dependency; it must honour ctx.
type Check func(ctx context.Context) error

type namedCheck struct {
	name     string
	fn       Check
	fallback bool // the service serves on without it (AddWithFallback)
}

// Checker owns the probes of one service.
type Checker struct {
	board   *fixes.Board
	timeout time.Duration
	checks  []namedCheck
	infos   map[string]func() any

	started  atomic.Bool
	draining atomic.Bool
}

// New returns a Checker whose dependency checks each get timeout.
func New(board *fixes.Board, timeout time.Duration) *Checker {
	return &Checker{board: board, timeout: timeout}
}

// Add registers a dependency check. Call it before serving.
func (h *Checker) Add(name string, fn Check) {
	h.checks = append(h.checks, namedCheck{name: name, fn: fn})
}

// AddWithFallback registers a dependency the service serves on without,
// from a fallback (Redis: the database, a local limit; NATS: the outbox).
// With the probes fix, while it is down readiness reports it, says
// "degraded" and still answers 200, and start-up (WaitReady) does not wait
// for it. Without the fix, as in the incident, every dependency is vital, and
// (liveness being readiness then) a process is killed for any of them.
func (h *Checker) AddWithFallback(name string, fn Check) {
	h.checks = append(h.checks, namedCheck{name: name, fn: fn, fallback: true})
}

// AddInfo adds a detail to the report that never fails readiness: the
// shedder's limit and in-flight count, say. Readiness failing under load
// would send the load to the other replicas and take them down in turn.
func (h *Checker) AddInfo(name string, fn func() any) {
	if h.infos == nil {
		h.infos = map[string]func() any{}
	}
	h.infos[name] = fn
}

// MarkStarted records that start-up (dependencies, migrations) is done.
func (h *Checker) MarkStarted() { h.started.Store(true) }

// Started reports whether start-up is done.
func (h *Checker) Started() bool { return h.started.Load() }

// MarkDraining makes readiness fail, first step of a graceful shutdown.
func (h *Checker) MarkDraining() { h.draining.Store(true) }

// Result is the outcome of one check.
type Result struct {
	Status    string  `json:"status"` // "up" or "down"
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// Report is the JSON of /readyz and /healthz.
type Report struct {
	Status string            `json:"status"` // "ready", "degraded", "starting", "draining" or "unavailable"
	Checks map[string]Result `json:"checks"`
	Info   map[string]any    `json:"info,omitempty"`
}

// Ready runs every check concurrently, each under its own timeout, so one
// hung dependency costs the probe h.timeout, not the sum of all of them.
func (h *Checker) Ready(ctx context.Context) Report {
	results := make(map[string]Result, len(h.checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	vital, degraded := false, false // a dependency down that the service needs; one it has a fallback for
	for _, c := range h.checks {
		wg.Go(func() {
			r := h.run(ctx, c.fn)
			mu.Lock()
			results[c.name] = r
			if r.Status != "up" {
				if h.vital(c) {
					vital = true
				} else {
					degraded = true
				}
			}
			mu.Unlock()
		})
	}
	wg.Wait()

	rep := Report{Status: "ready", Checks: results}
	if len(h.infos) > 0 {
		rep.Info = make(map[string]any, len(h.infos))
		for name, fn := range h.infos {
			rep.Info[name] = fn()
		}
	}
	switch {
	case vital:
		rep.Status = "unavailable"
	case degraded:
		rep.Status = "degraded"
	}
	switch {
	case h.draining.Load():
		rep.Status = "draining"
	case !h.started.Load():
		rep.Status = "starting"
	}
	return rep
}

// vital says whether the service cannot serve without c: readiness fails,
// and start-up waits, while it is down.
func (h *Checker) vital(c namedCheck) bool {
	// fix: probes — a dependency with a fallback degrades the service; it
	// does not take it out of the load balancer, nor hold up its start.
	return !c.fallback || !h.board.On(fixes.Probes)
}

func (h *Checker) run(ctx context.Context, fn Check) Result {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	r := Result{Status: "up", LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		r.Status, r.Error = "down", err.Error()
	}
	return r
}

// HandleLive serves /livez.
func (h *Checker) HandleLive(c *gin.Context) {
	if !h.board.On(fixes.Probes) {
		// The naive probe, as the incident had it: liveness pings the
		// database through the same pool the requests starve. Under load it
		// times out and the orchestrator kills a process that was only busy.
		// Not always at once: database/sql hands a freed connection to a
		// random waiter, not the oldest, so while the pool starves slowly
		// the ping now and then wins one, and one pass resets the kubelet's
		// count of failures (loadtest/MEASUREMENTS.md, "A fast machine").
		if rep := h.Ready(c.Request.Context()); rep.Status == "unavailable" {
			c.JSON(http.StatusServiceUnavailable, rep)
			return
		}
	}
	// fix: probes — liveness is the process answering, nothing more.
	c.JSON(http.StatusOK, gin.H{"status": "alive"})
}

// HandleReady serves /readyz and /healthz.
func (h *Checker) HandleReady(c *gin.Context) {
	rep := h.Ready(c.Request.Context())
	status := http.StatusOK
	if rep.Status != "ready" && rep.Status != "degraded" {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, rep)
}

// WaitReady is the start-up self-check: it runs every check until all pass,
// logging one line per failing dependency per attempt, and gives up after
// attempts tries so that a supervisor restarts a process that cannot start
// rather than leaving it half alive. With the probes fix, the dependencies
// the service has a fallback for are not waited for.
func (h *Checker) WaitReady(ctx context.Context, log *slog.Logger, attempts int, backoff time.Duration) error {
	var checks []namedCheck
	for _, c := range h.checks {
		if h.vital(c) {
			checks = append(checks, c)
		}
	}
	for attempt := 1; ; attempt++ {
		var failed []error
		for _, c := range checks {
			r := h.run(ctx, c.fn)
			if r.Status == "up" {
				continue
			}
			failed = append(failed, fmt.Errorf("%s: %s", c.name, r.Error))
			log.WarnContext(ctx, "waiting for dependency", "dependency", c.name, "attempt", attempt, "of", attempts, "error", r.Error)
		}
		if len(failed) == 0 {
			for _, c := range checks {
				log.InfoContext(ctx, "dependency ready", "dependency", c.name)
			}
			return nil
		}
		if attempt == attempts {
			return fmt.Errorf("health: dependencies not ready after %d attempts: %w", attempts, errors.Join(failed...))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}
