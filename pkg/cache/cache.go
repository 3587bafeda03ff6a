// Package cache connects to Redis (go-redis v9) with bounded timeouts and
// tracing, and stores JSON values under a service's key prefix.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
)

// Open returns a client for url; it connects lazily, so Redis being down at
// start is a readiness problem, not a crash.
func Open(url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, errors.New("cache: REDIS_URL is malformed") // never echo it: it may hold a password
	}
	// A cache that is slow is worse than a cache that is missing: every call
	// gives up quickly and the caller falls back to the database.
	opts.DialTimeout = 500 * time.Millisecond
	opts.ReadTimeout = 250 * time.Millisecond
	opts.WriteTimeout = 250 * time.Millisecond
	opts.PoolTimeout = 300 * time.Millisecond
	// No retry: the caller's fallback is the retry. go-redis waits 8–16 ms
	// before one, and with Redis down every command paid it, several times
	// a request (loadtest/MEASUREMENTS.md, "Redis down"). -1, because 0
	// means go-redis's default of three.
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	if err := redisotel.InstrumentTracing(rdb); err != nil {
		return nil, fmt.Errorf("cache: tracing: %w", err)
	}
	return rdb, nil
}

// Store reads and writes JSON values under a key prefix.
type Store struct {
	rdb    *redis.Client
	prefix string
}

// NewStore returns a Store that prefixes every key with prefix.
func NewStore(rdb *redis.Client, prefix string) *Store { return &Store{rdb: rdb, prefix: prefix} }

// Client returns the underlying client.
func (s *Store) Client() *redis.Client { return s.rdb }

// Key returns the full key for k.
func (s *Store) Key(k string) string { return s.prefix + k }

// Get decodes the value at key into v and reports whether it was there.
func (s *Store) Get(ctx context.Context, key string, v any) (bool, error) {
	b, err := s.rdb.Get(ctx, s.Key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cache: get %s: %w", key, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("cache: decode %s: %w", key, err)
	}
	return true, nil
}

// Set stores v as JSON at key for ttl.
func (s *Store) Set(ctx context.Context, key string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cache: encode %s: %w", key, err)
	}
	if err := s.rdb.Set(ctx, s.Key(key), b, ttl).Err(); err != nil {
		return fmt.Errorf("cache: set %s: %w", key, err)
	}
	return nil
}

// Ticket is handed out by a Lookup miss and redeemed by Fill.
type Ticket string

// versionTTL outlives any read that could still hold a ticket.
const versionTTL = 24 * time.Hour

// Lookup is Get for cache-aside reads: on a miss it also returns a Ticket to
// pass to Fill once the value has been loaded from the database.
//
// Plain "read the database, then Set" has a race every cache-aside system
// meets sooner or later: a reader loads the old row, a writer commits and
// deletes the entry, then the reader writes its old copy back, and that stale
// copy is served until it expires. Invalidate bumps a version per key; a Fill
// lands only if the version is still the one its Lookup saw.
func (s *Store) Lookup(ctx context.Context, key string, v any) (bool, Ticket, error) {
	vals, err := s.rdb.MGet(ctx, s.Key(key), s.Key(key)+"#v").Result()
	if err != nil {
		return false, "", fmt.Errorf("cache: lookup %s: %w", key, err)
	}
	version, _ := vals[1].(string)
	raw, ok := vals[0].(string)
	if !ok {
		return false, Ticket(version), nil
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return false, Ticket(version), fmt.Errorf("cache: decode %s: %w", key, err)
	}
	return true, Ticket(version), nil
}

var fill = redis.NewScript(`
local current = redis.call('GET', KEYS[2]) or ''
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

// Fill stores v at key for ttl unless the key was invalidated after the
// Lookup that issued t; stored reports which.
func (s *Store) Fill(ctx context.Context, key string, v any, ttl time.Duration, t Ticket) (bool, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("cache: encode %s: %w", key, err)
	}
	n, err := fill.Run(ctx, s.rdb, []string{s.Key(key), s.Key(key) + "#v"}, string(t), b, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("cache: fill %s: %w", key, err)
	}
	return n == 1, nil
}

// Invalidate deletes keys and voids every ticket issued for them.
func (s *Store) Invalidate(ctx context.Context, keys ...string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, s.Key(k))
			p.Incr(ctx, s.Key(k)+"#v")
			p.Expire(ctx, s.Key(k)+"#v", versionTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: invalidate: %w", err)
	}
	return nil
}

// Delete removes keys.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.Key(k)
	}
	if err := s.rdb.Del(ctx, full...).Err(); err != nil {
		return fmt.Errorf("cache: delete: %w", err)
	}
	return nil
}

// DeletePrefix removes every key that begins with prefix: SCAN's pages of
// about a thousand keys, each removed by one UNLINK (Redis frees the values
// in the background). It is for tearing down what a test or a replay's shop
// wrote under a prefix of its own; a service never needs it. One DEL a key
// took 1.9 s to clear what a replay's calibration leaves behind.
func DeletePrefix(ctx context.Context, rdb *redis.Client, prefix string) error {
	match := globEscaper.Replace(prefix) + "*"
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return fmt.Errorf("cache: scan %s: %w", match, err)
		}
		if len(keys) > 0 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return fmt.Errorf("cache: unlink: %w", err)
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// globEscaper escapes what SCAN's MATCH would read as a pattern.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
