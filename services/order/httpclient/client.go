// Package httpclient calls the user and search services. In the resilient
// form each call has a timeout, a bulkhead, a breaker and a cache with a last
// good copy, and after a 429 the dependency is not asked again before its
// Retry-After; in the naive form it has none of them, as in the incident.
package httpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/telemetry"
	"github.com/stampede-shop/stampede/pkg/web"
)

// errNotFound is a 404 from the other service: an answer, not a failure.
var errNotFound = errors.New("not found")

// StatusError is any other non-2xx answer: a 4xx, which means we sent
// something wrong — a bug, so a 500.
type StatusError struct {
	URL    string
	Status int
}

func (e *StatusError) Error() string { return fmt.Sprintf("GET %s: %d", e.URL, e.Status) }

// ClientError: a 4xx is not the other service failing.
func (e *StatusError) ClientError() bool { return true }

// UnavailableError is a 5xx or a 429 from the other service: it is down,
// overloaded or refusing us. The order cannot be placed now, but nothing is
// wrong with it, so our client gets a 503 with Retry-After (web.Overload),
// never a 500; and the breaker counts it as a failure.
type UnavailableError struct {
	Service string
	Status  int
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("the %s service is unavailable (it answered %d)", e.Service, e.Status)
}
func (e *UnavailableError) Code() string              { return "dependency_unavailable" }
func (e *UnavailableError) RetryAfter() time.Duration { return time.Second }

// BackingOffError is a call not sent, because the other service said when
// to come back (Retry-After) and that time has not come: the same 503 as
// the refusal it would have got, without the round trip.
type BackingOffError struct {
	Service string
	Left    time.Duration
}

func (e *BackingOffError) Error() string {
	return fmt.Sprintf("the %s service asked us to come back in %v", e.Service, e.Left.Round(time.Millisecond))
}
func (e *BackingOffError) Code() string              { return "dependency_unavailable" }
func (e *BackingOffError) RetryAfter() time.Duration { return max(time.Second, e.Left) }

// maxBackOff bounds how long a Retry-After can keep a dependency uncalled.
const maxBackOff = 5 * time.Second

// caller is the protection around one dependency.
type caller struct {
	name     string
	http     *http.Client
	timeout  time.Duration
	board    *fixes.Board
	breaker  *resilience.Breaker[struct{}]
	bulkhead *resilience.Bulkhead
	// until is when the dependency said to come back (Unix ns), 0 if it
	// did not: see backOff.
	until *atomic.Int64
}

func newCaller(name string, timeout time.Duration, board *fixes.Board, obs *resilience.Observer) caller {
	return caller{
		name:    name,
		http:    telemetry.HTTPClient(0), // no client-wide timeout: the naive form has none; the context bounds each call
		timeout: timeout,
		board:   board,
		breaker: resilience.NewBreaker[struct{}](resilience.BreakerSettings{Name: name}, board, obs),
		// Enough for the spike's concurrency, few enough that a slow
		// dependency cannot hold every goroutine of this service.
		bulkhead: resilience.NewBulkhead(name, 64, 50*time.Millisecond, obs),
		until:    new(atomic.Int64),
	}
}

// backOff remembers the Retry-After of a 429: this service's budget there
// is spent, and every call until then would be refused too. (A 503 is not
// remembered: a shedding service refuses some requests, not every one, and
// the breaker watches for a dependency that fails.)
func (c caller) backOff(resp *http.Response) {
	if d := web.RetryAfter(resp.Header, maxBackOff); d > 0 {
		c.until.Store(time.Now().Add(d).UnixNano())
	}
}

// backingOff returns a *BackingOffError while the dependency's Retry-After
// has not passed.
func (c caller) backingOff() error {
	if left := time.Until(time.Unix(0, c.until.Load())); left > 0 {
		return &BackingOffError{Service: c.name, Left: left}
	}
	return nil
}

// getJSON GETs url into v through the protections the fixes switch on.
func (c caller) getJSON(ctx context.Context, url string, v any) error {
	call := func(ctx context.Context) error {
		if c.board.On(fixes.Timeouts) {
			// fix: timeouts — no outbound call waits longer than this.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.timeout)
			defer cancel()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return resilience.NotFound(errNotFound)
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			if resp.StatusCode == http.StatusTooManyRequests && c.board.On(fixes.RateLimit) {
				c.backOff(resp)
			}
			return &UnavailableError{Service: c.name, Status: resp.StatusCode}
		case resp.StatusCode != http.StatusOK:
			return &StatusError{URL: url, Status: resp.StatusCode}
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	if c.board.On(fixes.RateLimit) {
		// fix: rate_limit — the client's half of a budget: once the other
		// service has answered 429, ask again only after its Retry-After.
		// The refusal is the same 503, in microseconds instead of a round
		// trip on a busy machine, and the other service is spared the call.
		if err := c.backingOff(); err != nil {
			return err
		}
	}
	if c.board.On(fixes.PoolGuard) {
		// fix: pool_guard — like the database pool, each dependency gets a
		// bounded share of concurrency and a bounded wait for it.
		inner := call
		call = func(ctx context.Context) error { return c.bulkhead.Do(ctx, inner) }
	}
	_, err := c.breaker.Do(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, call(ctx) })
	return err
}
