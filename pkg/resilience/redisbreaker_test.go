package resilience_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

// fix: breaker, around Redis. On: a miss is an answer and never trips it;
// with Redis down it opens after ten failures in a row, and commands then
// fail without going to Redis at all (its OpenError); with Redis back it
// closes after its probes. Off: every command goes to Redis and fails there.
func TestRedisBreaker(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		set := fixes.Naive
		if on {
			set = fixes.Resilient
		}
		proxy := testkit.NewProxy(t, "127.0.0.1:6379", true)
		rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
		t.Cleanup(func() { rdb.Close() })
		b := resilience.BreakRedis(rdb, resilience.BreakerSettings{OpenFor: 50 * time.Millisecond}, fixes.NewBoard(set, quiet), nil)
		ctx := context.Background()
		key := testkit.Name("breaker:missing:")
		// gets sends n GETs of a key that is not there and counts the
		// outcomes: a miss, the breaker's refusal, or any other error.
		gets := func(n int) (misses, open, failed int) {
			for range n {
				err := rdb.Get(ctx, key).Err()
				var oe *resilience.OpenError
				switch {
				case errors.Is(err, redis.Nil):
					misses++
				case errors.As(err, &oe):
					open++
				default:
					failed++
				}
			}
			return
		}

		if misses, _, _ := gets(30); misses != 30 || b.State() != "closed" {
			t.Fatalf("on=%v, Redis up: %d of 30 misses, breaker %s; want every miss an answer, breaker closed", on, misses, b.State())
		}
		proxy.SetUp(false)
		_, open, failed := gets(30)
		// Ten failures in a row open it; a GET on a new connection is two
		// (go-redis's HELLO goes through the breaker too).
		if on && (failed < 5 || failed > 10 || open != 30-failed) {
			t.Errorf("on, Redis down: %d failed at Redis, %d refused by the breaker; want 5–10, then the rest", failed, open)
		}
		if !on && (failed != 30 || open != 0) {
			t.Errorf("off, Redis down: %d failed at Redis, %d refused by the breaker; want all 30 at Redis", failed, open)
		}
		proxy.SetUp(true)
		time.Sleep(100 * time.Millisecond) // past OpenFor: the next calls are its probes
		if misses, _, _ := gets(10); misses != 10 || b.State() != "closed" {
			t.Errorf("on=%v, Redis back: %d of 10 misses, breaker %s; want every call answered, breaker closed", on, misses, b.State())
		}
	}
}
