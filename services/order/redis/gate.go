// Package redis is the order service's stock gate on Redis (fix: hot_row).
package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-shop/stampede/services/order/orders"
)

// take reserves every line or none, atomically: Redis runs a script alone.
// It answers 1 (taken), 0 (sold out) or -i (the i-th key is missing: Redis
// lost it or never had it, and it must be built from Postgres first).
var take = redis.NewScript(`
for i = 1, #KEYS do
  local left = redis.call('GET', KEYS[i])
  if not left then return -i end
  if tonumber(left) < tonumber(ARGV[i]) then return 0 end
end
for i = 1, #KEYS do redis.call('DECRBY', KEYS[i], ARGV[i]) end
return 1`)

// Stock reads the truth the gate is built from.
type Stock interface {
	Stock(ctx context.Context, productIDs []int64) (map[int64]int64, error)
}

// Gate is a counter per product in Redis, in front of Postgres: during a
// flash sale almost every request for the hot SKU is for stock that is gone,
// and the gate answers those in microseconds without a connection, a
// transaction or a row lock. Postgres's conditional UPDATE still decides for
// the requests the gate lets through, so a wrong or rebuilt gate can cost a
// little work, never an oversold unit.
type Gate struct {
	rdb    *redis.Client
	prefix string
	stock  Stock
	hits   func(result string)
}

// NewGate returns a gate with keys under prefix; hits counts decisions.
func NewGate(rdb *redis.Client, prefix string, stock Stock, hits func(result string)) *Gate {
	return &Gate{rdb: rdb, prefix: prefix, stock: stock, hits: hits}
}

var _ orders.Gate = (*Gate)(nil)

func (g *Gate) key(productID int64) string {
	return g.prefix + "stock:" + strconv.FormatInt(productID, 10)
}

// SoldOut reads the counters (MGET: one round trip, nothing reserved). A
// missing counter is not known to be sold out: Take will build it.
func (g *Gate) SoldOut(ctx context.Context, lines []orders.Item) (bool, error) {
	keys := make([]string, len(lines))
	for i, l := range lines {
		keys[i] = g.key(l.ProductID)
	}
	vals, err := g.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return false, fmt.Errorf("gate: %w", err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if left, err := strconv.ParseInt(s, 10, 64); err == nil && left < int64(lines[i].Quantity) {
			g.hits("sold_out")
			return true, nil
		}
	}
	return false, nil
}

// Take reserves the lines.
func (g *Gate) Take(ctx context.Context, lines []orders.Item, known map[int64]int64) (bool, error) {
	keys := make([]string, len(lines))
	qty := make([]any, len(lines))
	for i, l := range lines {
		keys[i], qty[i] = g.key(l.ProductID), l.Quantity
	}
	var built []int64
	for attempt := 0; attempt < 3; attempt++ {
		n, err := take.Run(ctx, g.rdb, keys, qty...).Int()
		if err != nil {
			return false, fmt.Errorf("gate: %w", err)
		}
		switch n {
		case 1:
			g.hits("admitted")
			return true, nil
		case 0:
			g.hits("sold_out")
			return false, nil
		}
		// Build the missing counter from Postgres: from the stock the caller
		// read (once: if the counter vanishes again, that may be stale), or
		// read now. SETNX: if another request built it meanwhile, theirs
		// stands.
		g.hits("rebuilt")
		missing := lines[-n-1].ProductID
		s, ok := known[missing]
		if !ok || slices.Contains(built, missing) {
			stock, err := g.stock.Stock(ctx, []int64{missing})
			if err != nil {
				return false, fmt.Errorf("gate: rebuild: %w", err)
			}
			if s, ok = stock[missing]; !ok {
				return false, orders.ErrUnknownProduct
			}
		}
		built = append(built, missing)
		if err := g.rdb.SetNX(ctx, g.key(missing), s, 0).Err(); err != nil {
			return false, fmt.Errorf("gate: rebuild: %w", err)
		}
	}
	return false, fmt.Errorf("gate: counters keep vanishing")
}

// Give returns reserved units.
func (g *Gate) Give(ctx context.Context, lines []orders.Item) error {
	_, err := g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, l := range lines {
			p.IncrBy(ctx, g.key(l.ProductID), int64(l.Quantity))
		}
		return nil
	})
	return err
}
