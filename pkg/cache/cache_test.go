package cache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

func TestStoreRoundTripUnderPrefix(t *testing.T) {
	t.Parallel()
	rdb, prefix := testkit.Redis(t)
	s := cache.NewStore(rdb, prefix)
	ctx := context.Background()
	type item struct{ N int }

	var got item
	if ok, err := s.Get(ctx, "a", &got); ok || err != nil {
		t.Fatalf("empty: %v %v", ok, err)
	}
	if err := s.Set(ctx, "a", item{N: 7}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Get(ctx, "a", &got); !ok || err != nil || got.N != 7 {
		t.Fatalf("after set: %v %v %+v", ok, err, got)
	}
	if n, _ := rdb.Exists(ctx, prefix+"a").Result(); n != 1 {
		t.Fatal("the key must live under the prefix")
	}
	if ttl, _ := rdb.TTL(ctx, prefix+"a").Result(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl %v", ttl)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Get(ctx, "a", &got); ok {
		t.Fatal("still there after Delete")
	}
	rdb.Set(ctx, prefix+"bad", "{not json", time.Minute)
	if _, err := s.Get(ctx, "bad", &got); err == nil {
		t.Fatal("a corrupt entry must be an error, not a zero value")
	}
}

func TestOpenRefusesMalformedURL(t *testing.T) {
	if _, err := cache.Open("redis://:pw@%zz"); err == nil || err.Error() != "cache: REDIS_URL is malformed" {
		t.Fatalf("got %v", err)
	}
}

// The race of cache-aside, step by step: a reader misses and loads the old
// value; meanwhile a writer commits and invalidates; then the reader writes
// back. With Fill the stale copy is refused; with a plain Set it would stick.
func TestFillRefusesAValueOlderThanTheLastInvalidation(t *testing.T) {
	t.Parallel()
	rdb, prefix := testkit.Redis(t)
	s := cache.NewStore(rdb, prefix)
	ctx := context.Background()
	var v int

	found, ticket, err := s.Lookup(ctx, "points", &v) // reader: miss
	if found || err != nil {
		t.Fatalf("lookup: %v %v", found, err)
	}
	oldValue := 19                                      // reader: loaded from the database
	if err := s.Invalidate(ctx, "points"); err != nil { // writer: committed 24, invalidates
		t.Fatal(err)
	}
	stored, err := s.Fill(ctx, "points", oldValue, time.Minute, ticket) // reader: writes back
	if err != nil || stored {
		t.Fatalf("stale fill stored=%v err=%v, want refused", stored, err)
	}
	if found, _, _ := s.Lookup(ctx, "points", &v); found {
		t.Fatalf("the stale value %d is cached", v)
	}

	// The next reader's fill, with a fresh ticket, lands.
	_, ticket, _ = s.Lookup(ctx, "points", &v)
	if stored, err := s.Fill(ctx, "points", 24, time.Minute, ticket); !stored || err != nil {
		t.Fatalf("fresh fill stored=%v err=%v", stored, err)
	}
	if found, _, _ := s.Lookup(ctx, "points", &v); !found || v != 24 {
		t.Fatalf("got %v %d, want 24", found, v)
	}

	// For contrast, the naive Set has no way to know and caches the old value.
	_, _, _ = s.Lookup(ctx, "naive", &v)
	_ = s.Invalidate(ctx, "naive")
	_ = s.Set(ctx, "naive", oldValue, time.Minute)
	if found, _, _ := s.Lookup(ctx, "naive", &v); !found || v != oldValue {
		t.Fatal("expected the naive Set to cache the stale value")
	}
}

func TestDeletePrefixRemovesItsKeysAndNoOthers(t *testing.T) {
	t.Parallel()
	rdb, prefix := testkit.Redis(t)
	ctx := context.Background()
	// More than one page of SCAN, under a prefix that is also a pattern:
	// unescaped, "run[1]*:" would match "run1x:" too.
	run := prefix + "run[1]*:"
	pipe := rdb.Pipeline()
	for i := range 2500 {
		pipe.Set(ctx, fmt.Sprintf("%skey%d", run, i), i, time.Minute)
	}
	kept := []string{prefix + "run1x:key", prefix + "other"}
	for _, k := range kept {
		pipe.Set(ctx, k, "kept", time.Minute)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	if err := cache.DeletePrefix(ctx, rdb, run); err != nil {
		t.Fatal(err)
	}
	if left, err := rdb.Exists(ctx, run+"key0", run+"key1234", run+"key2499").Result(); err != nil || left != 0 {
		t.Fatalf("%d of the prefix's keys left (%v)", left, err)
	}
	var n int
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	if n != len(kept) {
		t.Fatalf("%d keys under the test's prefix after the delete, want only the %d others", n, len(kept))
	}
	if found, err := rdb.Exists(ctx, kept...).Result(); err != nil || found != int64(len(kept)) {
		t.Fatalf("%d of the other keys found (%v), want %d", found, err, len(kept))
	}
}
