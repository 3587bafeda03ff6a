package redis

import (
	"context"
	"errors"
	"testing"

	"github.com/stampede-shop/stampede/pkg/testkit"
	"github.com/stampede-shop/stampede/services/order/orders"
)

// stockReads is the truth the gate is built from, counting its reads (a fake:
// what the test isolates is where the gate gets its numbers).
type stockReads struct {
	stock map[int64]int64
	reads int
}

func (s *stockReads) Stock(_ context.Context, ids []int64) (map[int64]int64, error) {
	s.reads++
	out := map[int64]int64{}
	for _, id := range ids {
		if n, ok := s.stock[id]; ok {
			out[id] = n
		}
	}
	return out, nil
}

// A counter the gate lacks is built from the stock its caller read already
// (the claim reads it in its own round trip) or, without it, read from
// Postgres; once built, it decides alone.
func TestTheGateBuildsACounterFromTheStockItIsGiven(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	truth := &stockReads{stock: map[int64]int64{1: 2, 2: 1}}
	g := NewGate(rdb, prefix, truth, func(string) {})
	one := func(id int64) []orders.Item { return []orders.Item{{ProductID: id, Quantity: 1}} }

	if ok, err := g.Take(ctx, one(1), map[int64]int64{1: 2}); err != nil || !ok {
		t.Fatalf("with the stock given: %v %v, want taken", ok, err)
	}
	if truth.reads != 0 {
		t.Fatalf("the gate read the stock %d times, want none: it was given", truth.reads)
	}
	if ok, err := g.Take(ctx, one(2), nil); err != nil || !ok || truth.reads != 1 {
		t.Fatalf("without it: %v %v, %d reads; want taken after one read", ok, err, truth.reads)
	}
	for _, want := range []bool{true, false} { // product 1: one unit left, then none
		if ok, err := g.Take(ctx, one(1), map[int64]int64{1: 2}); err != nil || ok != want {
			t.Fatalf("the counter built: %v %v, want %v (the given stock is for a missing counter only)", ok, err, want)
		}
	}
	if _, err := g.Take(ctx, one(3), nil); !errors.Is(err, orders.ErrUnknownProduct) {
		t.Fatalf("a product Postgres does not have: %v, want ErrUnknownProduct", err)
	}
}
