package cache_test

import (
	"context"
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
