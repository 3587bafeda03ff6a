package resilience

import (
	"context"
	"errors"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/stampede-shop/stampede/pkg/fixes"
)

// The values of the breaker_state gauge: the breakers export gobreaker's
// state as it is, and whoever reads the gauge (the replay's report) reads it
// with these.
const (
	BreakerClosed   = float64(gobreaker.StateClosed)
	BreakerHalfOpen = float64(gobreaker.StateHalfOpen)
	BreakerOpen     = float64(gobreaker.StateOpen)
)

// BreakerSettings configure a Breaker. The zero value of a field means its
// default, chosen as follows.
//
//   - Window 10 s in 10 buckets: the failure ratio is over the last ten
//     seconds, rolled a second at a time, so one bad second long ago does not
//     weigh on the present, and a trip reflects now.
//   - MinRequests 20: on a quiet service three errors out of four requests
//     are noise, not an outage. At the shop's normal load (hundreds of
//     requests a second) twenty requests take well under a second.
//   - FailureRatio 0.5: a dependency failing half the time is of no use to
//     anyone; below that, retries and fallbacks do better than refusing.
//   - OpenFor 2 s: long enough for an overloaded dependency to drain, short
//     enough that service is back within seconds of the dependency: the
//     replay's "recovered within 5 s" budget includes this wait.
//   - HalfOpenProbes 5: five calls in a row must succeed before all traffic
//     returns; one lucky call is not a recovery.
//   - TripAfter 0: no number of failures in a row opens the breaker by
//     itself; only the ratio does. A dependency whose every call fails when
//     it is out (Redis: refused or silent) can set it: the ratio over a
//     window full of the successes before the outage takes most of the
//     window to get there.
type BreakerSettings struct {
	Name           string
	Window         time.Duration
	MinRequests    uint32
	FailureRatio   float64
	OpenFor        time.Duration
	HalfOpenProbes uint32
	TripAfter      uint32
	// Classify decides what an error says about the dependency; Classify
	// (the package function) when nil.
	Classify func(error) Outcome
}

func (s BreakerSettings) withDefaults() BreakerSettings {
	if s.Window <= 0 {
		s.Window = 10 * time.Second
	}
	if s.MinRequests == 0 {
		s.MinRequests = 20
	}
	if s.FailureRatio <= 0 {
		s.FailureRatio = 0.5
	}
	if s.OpenFor <= 0 {
		s.OpenFor = 2 * time.Second
	}
	if s.HalfOpenProbes == 0 {
		s.HalfOpenProbes = 5
	}
	if s.Classify == nil {
		s.Classify = Classify
	}
	return s
}

// Breaker is a circuit breaker around calls to one dependency, on
// sony/gobreaker's rolling window. It acts only while the breaker fix is on.
type Breaker[T any] struct {
	cb       *gobreaker.CircuitBreaker[T]
	settings BreakerSettings
	board    *fixes.Board
}

// OpenError is returned without calling the dependency while the breaker is
// open (or half-open with its probes taken). It is an overload error: the
// edge answers 503 with Retry-After.
type OpenError struct {
	Name  string
	Retry time.Duration
}

func (e *OpenError) Error() string             { return e.Name + " is unavailable (circuit open)" }
func (e *OpenError) Code() string              { return "dependency_unavailable" }
func (e *OpenError) RetryAfter() time.Duration { return e.Retry }

// NewBreaker returns a breaker reporting to obs.
func NewBreaker[T any](s BreakerSettings, board *fixes.Board, obs *Observer) *Breaker[T] {
	s = s.withDefaults()
	if obs != nil {
		obs.state.WithLabelValues(s.Name).Set(0)
	}
	classify := s.Classify
	cb := gobreaker.NewCircuitBreaker[T](gobreaker.Settings{
		Name:         s.Name,
		MaxRequests:  s.HalfOpenProbes,
		Interval:     s.Window,
		BucketPeriod: s.Window / 10,
		Timeout:      s.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if s.TripAfter > 0 && c.ConsecutiveFailures >= s.TripAfter {
				return true
			}
			return c.Requests >= s.MinRequests && float64(c.TotalFailures) >= s.FailureRatio*float64(c.Requests)
		},
		IsSuccessful: func(err error) bool { return classify(err) == Success },
		IsExcluded:   func(err error) bool { return classify(err) == Ignore },
		OnStateChange: func(name string, from, to gobreaker.State) {
			if obs == nil {
				return
			}
			obs.state.WithLabelValues(name).Set(float64(to))
			obs.transitions.WithLabelValues(name, from.String(), to.String()).Inc()
			obs.logger().Warn("circuit breaker state changed", "breaker", name, "from", from.String(), "to", to.String())
		},
	})
	return &Breaker[T]{cb: cb, settings: s, board: board}
}

// State returns "closed", "half-open" or "open".
func (b *Breaker[T]) State() string { return b.cb.State().String() }

// Do calls fn through the breaker.
func (b *Breaker[T]) Do(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	if !b.board.On(fixes.Breaker) {
		return fn(ctx)
	}
	// fix: breaker — a failing dependency is not called at all for a while:
	// callers fail in microseconds instead of queueing behind it.
	v, err := b.cb.Execute(func() (T, error) { return fn(ctx) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return v, &OpenError{Name: b.settings.Name, Retry: b.settings.OpenFor}
	}
	return v, err
}
