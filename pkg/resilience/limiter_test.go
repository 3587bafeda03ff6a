package resilience_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a fake clock the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLocalLimiterRate(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	l := resilience.NewLocalLimiter(10, 10, 1000).WithClock(clk.now)
	ctx := context.Background()

	// Offer 100 requests a second, evenly, for 5 seconds: after the first
	// burst the bucket lets through its rate, 10 a second, give or take one.
	perSecond := make([]int, 5)
	for i := range 500 {
		d, _ := l.Allow(ctx, "client")
		if d.Allowed {
			perSecond[i/100]++
		}
		clk.advance(10 * time.Millisecond)
	}
	if perSecond[0] < 19 || perSecond[0] > 21 {
		t.Errorf("first second: %d allowed, want burst 10 + rate 10 (±1)", perSecond[0])
	}
	for s, n := range perSecond[1:] {
		if n < 9 || n > 11 {
			t.Errorf("second %d: %d allowed, want 10 ± 1", s+2, n)
		}
	}
	// Another key has its own budget.
	if d, _ := l.Allow(ctx, "other"); !d.Allowed || d.Remaining != 9 {
		t.Errorf("other key: %+v, want allowed with 9 left", d)
	}
}

func TestLocalLimiterDecision(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	l := resilience.NewLocalLimiter(2, 2, 10).WithClock(clk.now)
	ctx := context.Background()
	l.Allow(ctx, "k")
	l.Allow(ctx, "k")
	d, _ := l.Allow(ctx, "k")
	if d.Allowed || d.RetryAfter != 500*time.Millisecond || d.Remaining != 0 || d.Reset != time.Second {
		t.Fatalf("refusal: %+v, want RetryAfter 500ms, Reset 1s", d)
	}
}

func TestLocalLimiterMemoryIsBounded(t *testing.T) {
	l := resilience.NewLocalLimiter(1, 1, 100)
	ctx := context.Background()
	for i := range 10_000 {
		l.Allow(ctx, fmt.Sprint("ip-", i))
	}
	if n := l.Keys(); n > 100 {
		t.Fatalf("%d keys held, want at most 100", n)
	}
	// A key in active use survives the churn and keeps its (empty) bucket.
	l.Allow(ctx, "hot")
	for i := range 1000 {
		l.Allow(ctx, fmt.Sprint("new-", i))
		if d, _ := l.Allow(ctx, "hot"); d.Allowed {
			t.Fatalf("hot key got a fresh bucket after %d other keys", i)
		}
	}
}

func TestRateLimitMiddleware(t *testing.T) {
	for _, on := range []bool{true, false} {
		set := fixes.Naive
		if on {
			set = fixes.Resilient
		}
		r := gin.New()
		r.Use(resilience.RateLimit(resilience.NewLocalLimiter(1, 3, 10), resilience.ByClientIP("t"), fixes.NewBoard(set, quiet), quiet))
		r.GET("/", func(c *gin.Context) { c.Status(200) })
		codes := map[int]int{}
		var last *httptest.ResponseRecorder
		for range 10 {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			codes[rec.Code]++
			if rec.Code == 429 {
				last = rec
			}
		}
		if !on {
			if codes[200] != 10 {
				t.Errorf("fix off: %v, want every request through", codes)
			}
			continue
		}
		if codes[200] != 3 || codes[429] != 7 {
			t.Fatalf("fix on: %v, want 3 through and 7 refused", codes)
		}
		h := last.Header()
		if h.Get("Retry-After") != "1" || h.Get("RateLimit-Limit") != "1" || h.Get("RateLimit-Remaining") != "0" {
			t.Errorf("429 headers: %v", h)
		}
		if ct := h.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("429 must use the JSON error shape, got %s", ct)
		}
	}
}

func TestDeadline(t *testing.T) {
	for _, tt := range []struct {
		fixes        string
		wantDeadline bool
	}{{"timeouts", true}, {"naive", false}} {
		r := gin.New()
		r.Use(resilience.Deadline(250*time.Millisecond, boardOf(t, tt.fixes)))
		var has bool
		var left time.Duration
		r.GET("/", func(c *gin.Context) {
			var dl time.Time
			dl, has = c.Request.Context().Deadline()
			left = time.Until(dl)
		})
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		if has != tt.wantDeadline || (has && left > 250*time.Millisecond) {
			t.Errorf("fixes=%s: deadline=%v (%v left), want %v within 250ms", tt.fixes, has, left, tt.wantDeadline)
		}
	}
}

func boardOf(t *testing.T, s string) *fixes.Board {
	t.Helper()
	set, err := fixes.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return fixes.NewBoard(set, quiet)
}
