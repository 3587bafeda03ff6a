package resilience

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Decision is a limiter's answer for one request.
type Decision struct {
	Allowed    bool
	Limit      int           // requests per second
	Remaining  int           // requests left in the current burst
	RetryAfter time.Duration // when the next request would be allowed (if refused)
	Reset      time.Duration // when the budget is whole again
}

// Limiter answers whether the client identified by key may proceed now.
type Limiter interface {
	Allow(ctx context.Context, key string) (Decision, error)
}

// LocalLimiter is a token bucket per key (golang.org/x/time/rate), in memory.
//
// Memory is bounded without a sweeper goroutine: buckets live in two
// generations. New and recently used keys are in the young map; when it holds
// maxKeys/2 keys, the old map is dropped and the young one becomes old. A
// used key found in the old map moves back to the young one. A key forgotten
// this way was idle for a whole generation, and an idle bucket is a full
// bucket, which is exactly what a fresh one is.
type LocalLimiter struct {
	limit rate.Limit
	burst int
	half  int
	now   func() time.Time

	mu         sync.Mutex
	young, old map[string]*rate.Limiter
}

// NewLocalLimiter allows perSecond requests per key with bursts of burst,
// keeping at most maxKeys keys in memory.
func NewLocalLimiter(perSecond float64, burst, maxKeys int) *LocalLimiter {
	return &LocalLimiter{
		limit: rate.Limit(perSecond),
		burst: burst,
		half:  max(maxKeys/2, 1),
		now:   time.Now,
		young: make(map[string]*rate.Limiter),
		old:   make(map[string]*rate.Limiter),
	}
}

// WithClock returns the limiter reading time from now (tests, simulations).
func (l *LocalLimiter) WithClock(now func() time.Time) *LocalLimiter {
	l.now = now
	return l
}

// Keys returns how many keys are held in memory.
func (l *LocalLimiter) Keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.young) + len(l.old)
}

func (l *LocalLimiter) bucket(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.young[key]; ok {
		return b
	}
	b, ok := l.old[key]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
	} else {
		delete(l.old, key)
	}
	if len(l.young) >= l.half {
		l.old, l.young = l.young, make(map[string]*rate.Limiter, l.half)
	}
	l.young[key] = b
	return b
}

// Allow takes one token from key's bucket if it has one. It never fails.
func (l *LocalLimiter) Allow(_ context.Context, key string) (Decision, error) {
	now := l.now()
	b := l.bucket(key)
	d := Decision{Limit: int(l.limit)}
	if b.AllowN(now, 1) {
		d.Allowed = true
	} else {
		r := b.ReserveN(now, 1)
		d.RetryAfter = r.DelayFrom(now)
		r.CancelAt(now)
	}
	tokens := b.TokensAt(now)
	d.Remaining = max(int(tokens), 0)
	d.Reset = time.Duration((float64(l.burst) - tokens) / float64(l.limit) * float64(time.Second))
	return d, nil
}
