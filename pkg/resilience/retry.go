package resilience

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// RetryBudget caps retries at a fraction of the calls made, after Finagle and
// gRPC: every call deposits Ratio of a token, every retry withdraws a whole
// one. Under normal errors there is plenty of budget; when a dependency is
// down and every call fails, retries stop at Ratio of the traffic instead of
// multiplying it by the attempt count — exactly when more load would hurt.
type RetryBudget struct {
	ratio float64
	max   float64

	mu     sync.Mutex
	tokens float64
}

// NewRetryBudget allows retries up to ratio of calls (0.1 = one retry per ten
// calls), saving at most maxTokens for a burst of errors.
func NewRetryBudget(ratio float64, maxTokens int) *RetryBudget {
	return &RetryBudget{ratio: ratio, max: float64(maxTokens), tokens: float64(maxTokens)}
}

func (b *RetryBudget) deposit() {
	b.mu.Lock()
	b.tokens = min(b.max, b.tokens+b.ratio)
	b.mu.Unlock()
}

func (b *RetryBudget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// RetryPolicy says how often and how patiently to retry.
type RetryPolicy struct {
	Name        string
	MaxAttempts int           // including the first; default 3
	BaseDelay   time.Duration // default 20ms
	MaxDelay    time.Duration // default 500ms
	Budget      *RetryBudget  // required: retries without a budget are how overloads multiply
}

// RetryIdempotent calls fn until it succeeds, fails with an error that is not
// a Failure (a 4xx, a cancellation), runs out of attempts, of budget, or of
// ctx. Only idempotent operations may be retried — a GET, or a POST carrying
// an idempotency key — hence the name: the caller says so at the call site.
//
// Backoff is exponential with full jitter (a random delay between zero and
// the exponential step), so that clients that failed together do not retry
// together.
func RetryIdempotent(ctx context.Context, p RetryPolicy, obs *Observer, fn func(context.Context) error) error {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 3
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 20 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 500 * time.Millisecond
	}
	p.Budget.deposit()
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(ctx); err == nil || Classify(err) != Failure || attempt == p.MaxAttempts {
			return err
		}
		if !p.Budget.withdraw() {
			if obs != nil {
				obs.retries.WithLabelValues(p.Name, "false").Inc()
			}
			return err
		}
		if obs != nil {
			obs.retries.WithLabelValues(p.Name, "true").Inc()
		}
		step := min(p.MaxDelay, p.BaseDelay<<(attempt-1))
		t := time.NewTimer(rand.N(step) + 1) //nolint:gosec // jitter needs spread, not secrecy
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
