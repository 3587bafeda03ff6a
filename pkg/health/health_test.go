package health_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/health"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func probe(h gin.HandlerFunc) (int, string) {
	r := gin.New()
	r.GET("/", h)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec.Code, rec.Body.String()
}

func TestLivenessNeverTouchesDependencies(t *testing.T) {
	for _, tt := range []struct {
		fixes      fixes.Set
		wantStatus int
		wantCalls  int64
	}{
		{fixes.Resilient, 200, 0}, // fix: probes
		{fixes.Naive, 503, 1},     // the incident's probe
	} {
		var calls atomic.Int64
		h := health.New(fixes.NewBoard(tt.fixes, quiet), 50*time.Millisecond)
		h.Add("postgres", func(ctx context.Context) error { calls.Add(1); <-ctx.Done(); return ctx.Err() })
		h.MarkStarted()
		code, _ := probe(h.HandleLive)
		if code != tt.wantStatus || calls.Load() != tt.wantCalls {
			t.Errorf("fixes=%s: /livez %d after %d dependency calls, want %d after %d", tt.fixes, code, calls.Load(), tt.wantStatus, tt.wantCalls)
		}
	}
}

func TestReadiness(t *testing.T) {
	var dbDown atomic.Bool
	h := health.New(fixes.NewBoard(fixes.Resilient, quiet), 100*time.Millisecond)
	h.Add("postgres", func(context.Context) error {
		if dbDown.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
	h.Add("redis", func(ctx context.Context) error { return nil })

	check := func(wantCode int, wantInBody ...string) {
		t.Helper()
		code, body := probe(h.HandleReady)
		if code != wantCode {
			t.Fatalf("got %d %s, want %d", code, body, wantCode)
		}
		for _, s := range wantInBody {
			if !strings.Contains(body, s) {
				t.Fatalf("body %s lacks %s", body, s)
			}
		}
	}
	check(503, `"status":"starting"`)
	h.MarkStarted()
	check(200, `"status":"ready"`, `"redis":{"status":"up"`)
	dbDown.Store(true)
	check(503, `"status":"unavailable"`, `"error":"connection refused"`)
	dbDown.Store(false)
	check(200)
	h.MarkDraining()
	check(503, `"status":"draining"`)
}

// A dependency the service has a fallback for (Redis, NATS) degrades
// readiness and leaves it 200 with the probes fix: the replicas share it, and
// failing readiness for it would take all of them out of the load balancer
// at once. Without the fix it is as vital as the database, and the naive
// liveness, which is readiness, fails with it.
func TestADependencyWithAFallbackDegradesReadiness(t *testing.T) {
	for _, tt := range []struct {
		fixes       fixes.Set
		ready, live int
		status      string
	}{
		{fixes.Resilient, 200, 200, `"status":"degraded"`}, // fix: probes
		{fixes.Naive, 503, 503, `"status":"unavailable"`},
	} {
		var redisDown, dbDown atomic.Bool
		h := health.New(fixes.NewBoard(tt.fixes, quiet), 100*time.Millisecond)
		h.Add("postgres", func(context.Context) error {
			if dbDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		})
		h.AddWithFallback("redis", func(context.Context) error {
			if redisDown.Load() {
				return errors.New("i/o timeout")
			}
			return nil
		})
		h.MarkStarted()
		if code, body := probe(h.HandleReady); code != 200 || !strings.Contains(body, `"status":"ready"`) {
			t.Fatalf("fixes=%s, all up: readyz %d %s", tt.fixes, code, body)
		}
		redisDown.Store(true)
		code, body := probe(h.HandleReady)
		if code != tt.ready || !strings.Contains(body, tt.status) || !strings.Contains(body, `"redis":{"status":"down"`) {
			t.Errorf("fixes=%s, Redis down: readyz %d %s; want %d, %s, Redis reported down", tt.fixes, code, body, tt.ready, tt.status)
		}
		if code, _ := probe(h.HandleLive); code != tt.live {
			t.Errorf("fixes=%s, Redis down: livez %d, want %d", tt.fixes, code, tt.live)
		}
		dbDown.Store(true) // the database is vital either way
		if code, body := probe(h.HandleReady); code != 503 || !strings.Contains(body, `"status":"unavailable"`) {
			t.Errorf("fixes=%s, Redis and Postgres down: readyz %d %s; want 503, unavailable", tt.fixes, code, body)
		}
	}
}

func TestHungCheckCostsOnlyItsTimeout(t *testing.T) {
	h := health.New(fixes.NewBoard(fixes.Resilient, quiet), 20*time.Millisecond)
	h.Add("hung", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	h.MarkStarted()
	rep := h.Ready(context.Background())
	if rep.Checks["hung"].Status != "down" || !strings.Contains(rep.Checks["hung"].Error, "deadline") {
		t.Fatalf("a hung check must be cut off by its timeout: %+v", rep)
	}
}

func TestWaitReady(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	var tries atomic.Int64
	h := health.New(nil, time.Second)
	h.Add("postgres", func(context.Context) error {
		if tries.Add(1) < 3 {
			return errors.New("the database system is starting up")
		}
		return nil
	})
	if err := h.WaitReady(context.Background(), log, 5, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), `"msg":"waiting for dependency"`); n != 2 {
		t.Fatalf("want one log line per failed attempt (2), got %d:\n%s", n, logs.String())
	}

	tries.Store(-100)
	err := h.WaitReady(context.Background(), quiet, 3, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts") || !strings.Contains(err.Error(), "postgres") {
		t.Fatalf("want a bounded failure naming postgres, got %v", err)
	}
}

// Start-up waits for the dependencies the service cannot serve without; with
// the probes fix, not for one it has a fallback for.
func TestWaitReadyWaitsOnlyForWhatIsVital(t *testing.T) {
	for _, tt := range []struct {
		fixes fixes.Set
		waits bool
	}{{fixes.Resilient, false}, {fixes.Naive, true}} {
		h := health.New(fixes.NewBoard(tt.fixes, quiet), 10*time.Millisecond)
		h.Add("postgres", func(context.Context) error { return nil })
		h.AddWithFallback("nats", func(context.Context) error { return errors.New("nats is RECONNECTING") })
		err := h.WaitReady(context.Background(), quiet, 3, time.Millisecond)
		if waited := err != nil; waited != tt.waits || waited && !strings.Contains(err.Error(), "nats") {
			t.Errorf("fixes=%s, NATS down: WaitReady %v; want it to give up waiting for NATS: %v", tt.fixes, err, tt.waits)
		}
	}
}
