package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/web"
)

var errDown = errors.New("connection refused")

func call(b *resilience.Breaker[int], err error) error {
	_, got := b.Do(context.Background(), func(context.Context) (int, error) { return 1, err })
	return got
}

// Inside a synctest bubble time is virtual: time.Sleep advances the clock
// gobreaker reads, so the open interval passes without the test waiting.
func TestBreakerTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := resilience.NewBreaker[int](resilience.BreakerSettings{Name: "db"}, fixes.NewBoard(fixes.Resilient, quiet), nil)

		// 19 failures: under MinRequests (20), still closed.
		for range 19 {
			call(b, errDown)
		}
		if b.State() != "closed" {
			t.Fatalf("after 19 failures: %s, want closed (minimum requests is 20)", b.State())
		}
		call(b, errDown)
		if b.State() != "open" {
			t.Fatalf("after 20 failures: %s, want open", b.State())
		}

		// Open: the dependency is not called; the error is an overload.
		called := false
		_, err := b.Do(context.Background(), func(context.Context) (int, error) { called = true; return 0, nil })
		var open *resilience.OpenError
		var ol web.Overload
		if called || !errors.As(err, &open) || !errors.As(err, &ol) || ol.RetryAfter() != 2*time.Second {
			t.Fatalf("open breaker: called=%v err=%v", called, err)
		}

		time.Sleep(2*time.Second + time.Millisecond) // the open interval, on the fake clock
		if b.State() != "half-open" {
			t.Fatalf("after OpenFor: %s, want half-open", b.State())
		}
		// A failed probe opens it again.
		call(b, errDown)
		if b.State() != "open" {
			t.Fatalf("failed probe: %s, want open", b.State())
		}
		time.Sleep(2*time.Second + time.Millisecond)
		for i := range 5 {
			if err := call(b, nil); err != nil {
				t.Fatalf("probe %d: %v", i, err)
			}
		}
		if b.State() != "closed" {
			t.Fatalf("after 5 good probes: %s, want closed", b.State())
		}
	})
}

func TestBreakerTripsOnRatioNotOnSuccessfulTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := resilience.NewBreaker[int](resilience.BreakerSettings{Name: "db"}, fixes.NewBoard(fixes.Resilient, quiet), nil)
		// 40% failures over 100 requests: below the ratio, stays closed.
		for i := range 100 {
			if i%5 < 2 {
				call(b, errDown)
			} else {
				call(b, nil)
			}
		}
		if b.State() != "closed" {
			t.Fatalf("40%% failures: %s, want closed", b.State())
		}
		// The window rolls: ten seconds later the old failures are forgotten,
		// and 15 fresh failures are under the minimum again.
		time.Sleep(11 * time.Second)
		for range 15 {
			call(b, errDown)
		}
		if b.State() != "closed" {
			t.Fatalf("old failures must have rolled out of the window: %s", b.State())
		}
	})
}

func TestBreakerIgnoresCancellationsAndClientErrors(t *testing.T) {
	notFound := resilience.NotFound(errors.New("no such order"))
	for name, err := range map[string]error{
		"caller cancelled": fmt.Errorf("query: %w", context.Canceled),
		"4xx":              web.NewError(http.StatusConflict, "sold_out", "sold out"),
		"not found":        notFound,
	} {
		b := resilience.NewBreaker[int](resilience.BreakerSettings{Name: "db"}, fixes.NewBoard(fixes.Resilient, quiet), nil)
		for range 100 {
			if got := call(b, err); !errors.Is(got, err) {
				t.Fatalf("%s: the error must come back unchanged, got %v", name, got)
			}
		}
		if b.State() != "closed" {
			t.Errorf("%s: 100 of them opened the breaker", name)
		}
	}
	// Deadline exceeded does count.
	b := resilience.NewBreaker[int](resilience.BreakerSettings{Name: "db"}, fixes.NewBoard(fixes.Resilient, quiet), nil)
	for range 20 {
		call(b, context.DeadlineExceeded)
	}
	if b.State() != "open" {
		t.Errorf("timeouts must trip the breaker: %s", b.State())
	}
}

func TestBreakerFollowsTheSwitchAtRunTime(t *testing.T) {
	board := fixes.NewBoard(fixes.Resilient, quiet)
	b := resilience.NewBreaker[int](resilience.BreakerSettings{Name: "db"}, board, nil)
	for range 20 {
		call(b, errDown)
	}
	var open *resilience.OpenError
	if err := call(b, nil); !errors.As(err, &open) {
		t.Fatalf("fix on: %v, want the open breaker to refuse", err)
	}
	board.Replace(fixes.Naive, "test")
	if err := call(b, nil); err != nil {
		t.Fatalf("fix off: %v, want the call to go through", err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
