package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

// countEvents counts distinct order.created event ids in the instance's
// stream until want arrive or the wait ends, and reports any delivered twice
// with different ids for the same order.
func countEvents(t *testing.T, in *testkit.Instance, want int, within time.Duration) (received int, orders map[string]int) {
	t.Helper()
	js, _ := testkit.NATS(t)
	names := events.Orders(in.Env["EVENTS_NAMESPACE"])
	var mu sync.Mutex
	ids := map[string]bool{}
	orders = map[string]int{}
	stop, err := events.Consume(context.Background(), js, names.Stream, testkit.Name("count"), names.OrderCreated, slog.New(slog.DiscardHandler), func(_ context.Context, data []byte) error {
		var ev events.OrderCreated
		if err := events.Decode(data, &ev); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if !ids[ev.EventID] {
			ids[ev.EventID] = true
			orders[ev.OrderID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(ids)
		mu.Unlock()
		if n >= want {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	mu.Lock()
	defer mu.Unlock()
	return len(ids), orders
}

func query(t *testing.T, in *testkit.Instance, sql string) int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), in.Env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// 500 buyers, one unit each, of a SKU with 100 in stock, all at once: exactly
// 100 orders, 400 sold out, stock 0, 100 events — in both forms. A client
// that gets 503 (shed, pool timeout) comes back with the same key, as a real
// client should; it must never see a 500.
func TestFlashSaleNeverOversells(t *testing.T) {
	for _, fixesValue := range []string{"naive", "resilient"} {
		t.Run(fixesValue, func(t *testing.T) {
			t.Parallel()
			in := start(t, fixesValue, startDeps(t))
			const buyers = 500
			answers := make([]string, buyers)
			var wg sync.WaitGroup
			for i := range buyers {
				wg.Go(func() {
					tok := token(t, int64(i%50+1))
					key := fmt.Sprintf("flash-%d", i)
					r := placeUntilAnswered(t, in, tok, key, `{"items":[{"product_id":1,"quantity":1}]}`)
					answers[i] = strings.TrimSpace(fmt.Sprintf("%d %s", r.Status, r.ErrCode()))
					if a := answers[i]; a != "201" && a != "409 sold_out" {
						t.Errorf("buyer %d: %s", i, r.Raw)
					}
				})
			}
			wg.Wait()
			count := map[string]int{}
			for _, a := range answers {
				count[a]++
			}
			if want := map[string]int{"201": 100, "409 sold_out": 400}; !maps.Equal(count, want) {
				t.Fatalf("answers %v, want %v", count, want)
			}
			if stock := query(t, in, `SELECT stock FROM inventory WHERE product_id = 1`); stock != 0 {
				t.Fatalf("stock %d, want 0", stock)
			}
			if n := query(t, in, `SELECT count(*) FROM orders`); n != 100 {
				t.Fatalf("%d order rows, want 100", n)
			}
			if n := query(t, in, `SELECT coalesce(sum(quantity), 0) FROM order_items WHERE product_id = 1`); n != 100 {
				t.Fatalf("%d units sold, want 100", n)
			}
			got, perOrder := countEvents(t, in, 100, 15*time.Second)
			if got != 100 || len(perOrder) != 100 {
				t.Fatalf("%d events for %d orders, want 100 for 100", got, len(perOrder))
			}
		})
	}
}
