package resilience

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-shop/stampede/pkg/fixes"
)

// BreakRedis puts a breaker around every command rdb sends (a go-redis hook),
// named "redis" unless s names it, and returns it. Ten failures in a row
// open it unless s says otherwise (TripAfter): with the ratio alone, over a
// window full of the successes before an outage, it opened 8 s in.
//
// Every caller of Redis in the shop already has a fallback: the database
// instead of the cache, each replica's own rate limit, Postgres alone
// deciding the stock. What a Redis outage costs them is the wait before the
// fallback. A Redis that stops answering (a partition: the connections stay
// open, nothing comes back) makes each command wait out its read timeout,
// 250 ms, several times a request; the adaptive limits fall to their floor.
// In the replay's redis-outage the resilient shop without the breaker fix
// served 4 of the 444 requests a second it was offered and shed the rest;
// with it, and this breaker, 226 of 236 (loadtest/MEASUREMENTS.md, "Redis
// down"). Open, it fails each command in microseconds, and the fallbacks
// are free.
func BreakRedis(rdb *redis.Client, s BreakerSettings, board *fixes.Board, obs *Observer) *Breaker[struct{}] {
	if s.Name == "" {
		s.Name = "redis"
	}
	if s.Classify == nil {
		s.Classify = classifyRedis
	}
	if s.TripAfter == 0 {
		s.TripAfter = 10
	}
	b := NewBreaker[struct{}](s, board, obs)
	rdb.AddHook(redisBreaker{b})
	return b
}

// classifyRedis counts Redis's own answers as successes: a cache miss
// (redis.Nil) and an error reply (NOSCRIPT, WRONGTYPE) both come from a
// server that is up.
func classifyRedis(err error) Outcome {
	var reply redis.Error
	if errors.Is(err, redis.Nil) || errors.As(err, &reply) {
		return Success
	}
	return Classify(err)
}

type redisBreaker struct{ b *Breaker[struct{}] }

func (h redisBreaker) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisBreaker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.through(ctx, []redis.Cmder{cmd}, func(ctx context.Context) error { return next(ctx, cmd) })
	}
}

func (h redisBreaker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.through(ctx, cmds, func(ctx context.Context) error { return next(ctx, cmds) })
	}
}

// through sends cmds through the breaker. When it is open nothing is sent,
// and each command carries the breaker's error, as if Redis had refused it.
func (h redisBreaker) through(ctx context.Context, cmds []redis.Cmder, send func(context.Context) error) error {
	sent := false
	_, err := h.b.Do(ctx, func(ctx context.Context) (struct{}, error) {
		sent = true
		return struct{}{}, send(ctx)
	})
	if err != nil && !sent {
		for _, cmd := range cmds {
			cmd.SetErr(err)
		}
	}
	return err
}
