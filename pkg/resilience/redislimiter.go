package resilience

import (
	"context"
	"sync/atomic"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// RedisLimiter is a GCRA rate limiter shared by every replica through Redis
// (go-redis/redis_rate): ten replicas enforce one budget per client, not ten.
//
// If Redis cannot answer, it falls back to a LocalLimiter with the same
// budget. Each replica then enforces the budget on its own, so while Redis is
// down a client may get up to replicas × the limit. That is the deliberate
// trade: a limiter must never turn a Redis outage into an outage of the API,
// and an over-generous limit for a few seconds is the lesser evil.
type RedisLimiter struct {
	rl       *redis_rate.Limiter
	limit    redis_rate.Limit
	prefix   string
	local    *LocalLimiter
	obs      *Observer
	degraded atomic.Bool
}

// NewRedisLimiter allows perSecond requests per key, with bursts of burst,
// keys under prefix.
func NewRedisLimiter(rdb *redis.Client, prefix string, perSecond, burst int, obs *Observer) *RedisLimiter {
	return &RedisLimiter{
		rl:     redis_rate.NewLimiter(rdb),
		limit:  redis_rate.Limit{Rate: perSecond, Burst: burst, Period: 1e9},
		prefix: prefix,
		local:  NewLocalLimiter(float64(perSecond), burst, 100_000),
		obs:    obs,
	}
}

// Allow asks Redis, or the local fallback when Redis fails.
func (l *RedisLimiter) Allow(ctx context.Context, key string) (Decision, error) {
	res, err := l.rl.Allow(ctx, l.prefix+key, l.limit)
	if err != nil {
		if !l.degraded.Swap(true) {
			l.obs.logger().WarnContext(ctx, "rate limiter: Redis unreachable, limiting per replica until it is back", "error", err)
		}
		return l.local.Allow(ctx, key)
	}
	if l.degraded.Swap(false) {
		l.obs.logger().InfoContext(ctx, "rate limiter: Redis is back, limits are shared again")
	}
	d := Decision{Allowed: res.Allowed > 0, Limit: l.limit.Rate, Remaining: res.Remaining, Reset: res.ResetAfter}
	if !d.Allowed {
		d.RetryAfter = res.RetryAfter
	}
	return d, nil
}
