package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
	"github.com/stampede-shop/stampede/services/order/migrations"
	"github.com/stampede-shop/stampede/services/order/orders"
)

// A request that claimed its idempotency key and ended without answering or
// releasing it (killed, or the database away for the release) holds the key
// for the claim's lease, not for the key's day: then a retry takes it over.
// The first request, if it comes back, can neither answer for the key (its
// order would be a second one) nor release the new claim.
func TestALapsedClaimIsTakenOverAndCannotAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, 4, nil)
	answer := func(claim string) error {
		return s.InTx(ctx, func(ctx context.Context, tx orders.Tx) error {
			return tx.SaveReply(ctx, 7, "k1", claim, orders.Reply{Status: 201, Body: []byte(`{"id":"o1"}`)})
		})
	}

	first, err := s.ClaimKey(ctx, 7, "k1", "h", nil)
	if err != nil || !first.Owned || first.ID == "" {
		t.Fatalf("first claim: %+v %v", first, err)
	}
	if _, err := s.ClaimKey(ctx, 7, "k1", "h", nil); !errors.Is(err, orders.ErrInProgress) {
		t.Fatalf("a retry while the first is in flight: %v, want ErrInProgress", err)
	}
	pastTheLease(t, s) // the first never answered nor released
	second, err := s.ClaimKey(ctx, 7, "k1", "h", nil)
	if err != nil || !second.Owned || second.ID == first.ID {
		t.Fatalf("a retry past the lease: %+v %v, want the key taken over under a new claim", second, err)
	}
	if err := answer(first.ID); !errors.Is(err, orders.ErrInProgress) {
		t.Fatalf("the first answering after the takeover: %v, want ErrInProgress (no second order)", err)
	}
	if err := s.ReleaseKey(ctx, 7, "k1", first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimKey(ctx, 7, "k1", "h", nil); !errors.Is(err, orders.ErrInProgress) {
		t.Fatalf("after the first released its lapsed claim: %v, want the second's claim still held", err)
	}
	if err := answer(second.ID); err != nil {
		t.Fatal(err)
	}
	pastTheLease(t, s) // an answer lives as long as the key
	again, err := s.ClaimKey(ctx, 7, "k1", "h", nil)
	if err != nil || again.Owned || again.Replay == nil || again.Replay.Status != 201 {
		t.Fatalf("the key after the answer, past the lease: %+v %v, want the answer replayed", again, err)
	}
}

// pastTheLease moves every key of s's database a lease and a second into the
// past, as if that long had gone by: a test that slept through a shortened
// lease instead failed on a busy machine, where the first retry came after
// the lease was already over.
func pastTheLease(t *testing.T, s *Store) {
	t.Helper()
	_, err := s.db.SQL().ExecContext(context.Background(),
		`UPDATE idempotency_keys SET expires_at = expires_at - $1::interval`, fmt.Sprintf("%f seconds", (s.lease+time.Second).Seconds()))
	if err != nil {
		t.Fatal(err)
	}
}

// openStore migrates a fresh database and opens a Store on it with a pool of
// maxOpen connections, through the proxy if there is one.
func openStore(t testing.TB, maxOpen int, via *testkit.Proxy) *Store {
	t.Helper()
	return NewStore(testkit.MigratedDB(t, migrations.FS, via, config.DB{MaxOpen: maxOpen}), "order.created")
}

// placement claims key for user 7 and returns what placing lines under the
// claim writes, with an event.
func placement(t testing.TB, s *Store, key string, lines ...orders.Item) orders.Placement {
	t.Helper()
	claim, err := s.ClaimKey(context.Background(), 7, key, key, nil)
	if err != nil || !claim.Owned {
		t.Fatalf("claim %s: %+v %v", key, claim, err)
	}
	o := &orders.Order{ID: uuid.NewString(), UserID: 7, Status: orders.StatusCreated, Items: lines, CreatedAt: time.Now().UTC()}
	ev := events.OrderCreated{EventID: uuid.NewString(), OrderID: o.ID, UserID: 7, OccurredAt: o.CreatedAt}
	return orders.Placement{Order: o, Key: key, Claim: claim.ID, Reply: orders.Reply{Status: 201, Body: []byte(`{"id":"` + o.ID + `"}`)}, Event: &ev}
}

// An order's transaction sent whole writes everything or nothing: short stock
// on any line, or a claim on the key that lapsed, and no order, no line, no
// reply, no event and no stock taken remain.
func TestPlaceWritesAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, 2, nil)
	for id, stock := range map[int64]int64{1: 5, 2: 1} {
		if err := s.SetStock(ctx, id, stock); err != nil {
			t.Fatal(err)
		}
	}
	outbox := func() (n int64) {
		if err := s.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	expect := func(what string, stock1, stock2, events int64) {
		t.Helper()
		got, err := s.Stock(ctx, []int64{1, 2})
		if err != nil {
			t.Fatal(err)
		}
		if got[1] != stock1 || got[2] != stock2 || outbox() != events {
			t.Fatalf("%s: stock %v, %d events; want 1:%d 2:%d, %d events", what, got, outbox(), stock1, stock2, events)
		}
	}

	first := placement(t, s, "k1", orders.Item{ProductID: 1, Quantity: 2, PriceCents: 100}, orders.Item{ProductID: 2, Quantity: 1, PriceCents: 50})
	if err := s.Place(ctx, first); err != nil {
		t.Fatal(err)
	}
	expect("placed", 3, 0, 1)
	if o, err := s.Order(ctx, first.Order.ID); err != nil || len(o.Items) != 2 {
		t.Fatalf("the placed order: %+v %v", o, err)
	}
	if c, err := s.ClaimKey(ctx, 7, "k1", "k1", nil); err != nil || c.Replay == nil || c.Replay.Status != 201 {
		t.Fatalf("its key: %+v %v, want the reply to replay", c, err)
	}

	short := placement(t, s, "k2", orders.Item{ProductID: 1, Quantity: 1}, orders.Item{ProductID: 2, Quantity: 1})
	if err := s.Place(ctx, short); !errors.Is(err, orders.ErrSoldOut) {
		t.Fatalf("the second line's stock is gone: %v, want ErrSoldOut", err)
	}
	expect("sold out", 3, 0, 1) // the first line's unit is back
	if _, err := s.Order(ctx, short.Order.ID); !errors.Is(err, orders.ErrNotFound) {
		t.Fatalf("the sold-out order: %v, want none", err)
	}
	if _, err := s.ClaimKey(ctx, 7, "k2", "k2", nil); !errors.Is(err, orders.ErrInProgress) {
		t.Fatalf("the sold-out order's key: %v, want still only claimed (no reply saved)", err)
	}

	taken := placement(t, s, "k3", orders.Item{ProductID: 1, Quantity: 1})
	taken.Claim = uuid.NewString() // as if the lease had run out and another request held the key
	if err := s.Place(ctx, taken); !errors.Is(err, orders.ErrInProgress) {
		t.Fatalf("a lapsed claim: %v, want ErrInProgress", err)
	}
	expect("claim lapsed", 3, 0, 1)

	quiet := placement(t, s, "k4", orders.Item{ProductID: 1, Quantity: 1})
	quiet.Event = nil // the outbox fix off: the caller publishes
	if err := s.Place(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	expect("placed without an event", 2, 0, 1)
}

// Under a slow database every round trip holds a connection for its whole
// length, so each use of the store counts them, at a proxy, with a pool of one
// connection. An order's transaction sent whole is two (the batch, then the
// commit); one statement at a time, as InTx sends it, seven. The outbox relay
// is two whatever its batch: the claim, then the mark with the commit.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	proxy := testkit.NewProxy(t, "127.0.0.1:5432", true)
	s := openStore(t, 1, proxy)
	if err := s.SetStock(ctx, 1, 100); err != nil {
		t.Fatal(err)
	}
	placed := placement(t, s, "placed", orders.Item{ProductID: 1, Quantity: 1})
	if err := s.Place(ctx, placed); err != nil {
		t.Fatal(err)
	}
	n := 0
	key := func() string { n++; return fmt.Sprint("k", n) }
	var p orders.Placement // set up before each try of the cases that place one
	newPlacement := func(t testing.TB) { p = placement(t, s, key(), orders.Item{ProductID: 1, Quantity: 1}) }
	for _, c := range []struct {
		name  string
		want  int64
		setUp func(testing.TB) // before each try, not counted
		do    func() error
	}{
		{"claim a key and read the stock", 1, nil, func() error {
			c, err := s.ClaimKey(ctx, 7, key(), "h", []int64{1})
			if err == nil && (!c.Owned || c.Stock[1] < 1) {
				err = fmt.Errorf("claimed %+v, want the key owned and product 1's stock", c)
			}
			return err
		}},
		{"find an answered key", 1, nil, func() error {
			c, err := s.ClaimKey(ctx, 7, placed.Key, placed.Key, []int64{1})
			if err == nil && (c.Owned || c.Replay == nil) {
				err = fmt.Errorf("claimed %+v, want the placed order's reply", c)
			}
			return err
		}},
		{"take over an expired key", 1, func(t testing.TB) {
			s.lease = -time.Minute // the claim has lapsed as it is made
			defer func() { s.lease = orders.ClaimLease }()
			if _, err := s.ClaimKey(ctx, 7, key(), "h", nil); err != nil {
				t.Fatal(err)
			}
		}, func() error {
			c, err := s.ClaimKey(ctx, 7, fmt.Sprint("k", n), "h", nil)
			if err == nil && !c.Owned {
				err = fmt.Errorf("the expired key: %+v, want it taken over", c)
			}
			return err
		}},
		{"place an order, sent whole", 2, newPlacement, func() error { return s.Place(ctx, p) }},
		{"place an order, one statement at a time", 7, newPlacement, func() error { return placeOneByOne(ctx, s, p) }},
		{"read an order", 1, nil, func() error {
			o, err := s.Order(ctx, p.Order.ID)
			if err == nil && (o.ID != p.Order.ID || o.UserID != 7 || len(o.Items) != 1 || o.Items[0].ProductID != 1) {
				err = fmt.Errorf("read %+v, want %+v", o, *p.Order)
			}
			return err
		}},
		{"list orders", 1, nil, func() error {
			list, err := s.List(ctx, 7, nil, 3)
			if err == nil && (len(list) != 3 || list[0].ID != p.Order.ID || len(list[2].Items) != 1) {
				err = fmt.Errorf("listed %+v, want the newest three, %s first", list, p.Order.ID)
			}
			return err
		}},
		{"relay a batch of events", 2, func(t testing.TB) { placeEvents(t, s, 3) }, func() error {
			sent, err := s.RelayBatch(ctx, 100, func(_ context.Context, batch []Pending) (acked []int64, _ error) {
				for _, p := range batch {
					acked = append(acked, p.ID)
				}
				return acked, nil
			})
			if err == nil && sent < 3 {
				err = fmt.Errorf("relayed %d events, want at least 3", sent)
			}
			return err
		}},
		{"find the outbox empty", 2, nil, func() error {
			_, err := s.RelayBatch(ctx, 100, func(_ context.Context, batch []Pending) ([]int64, error) {
				if len(batch) > 0 {
					return nil, fmt.Errorf("claimed %d events, want none left", len(batch))
				}
				return nil, nil
			})
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			setUp := func() {
				if c.setUp != nil {
					c.setUp(t)
				}
			}
			if got := proxy.RoundTrips(t, setUp, c.do); got != c.want {
				t.Errorf("%d round trips, want %d", got, c.want)
			}
		})
	}
}

// placeOneByOne writes what Place writes, one statement at a time, as InTx
// sends them (the decrement unconditional: the caller made sure of stock).
func placeOneByOne(ctx context.Context, s *Store, p orders.Placement) error {
	return s.InTx(ctx, func(ctx context.Context, tx orders.Tx) error {
		if err := tx.InsertOrder(ctx, p.Order); err != nil {
			return err
		}
		if err := tx.SaveReply(ctx, p.Order.UserID, p.Key, p.Claim, p.Reply); err != nil {
			return err
		}
		if err := tx.AppendOutbox(ctx, *p.Event); err != nil {
			return err
		}
		for _, it := range p.Order.Items {
			if err := tx.Decrement(ctx, it.ProductID, it.Quantity); err != nil {
				return err
			}
		}
		return nil
	})
}

// BenchmarkPlace times an order's transaction through a proxy on loopback,
// then with every round trip a millisecond longer (the proxy holds back what
// the client sends), as on a busy or distant database: sent whole it pays
// that twice, one statement at a time seven times.
func BenchmarkPlace(b *testing.B) {
	ctx := context.Background()
	proxy := testkit.NewProxy(b, "127.0.0.1:5432", true)
	s := openStore(b, 1, proxy)
	if err := s.SetStock(ctx, 1, 1<<40); err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, delay := range []time.Duration{0, time.Millisecond} {
		proxy.SetDelay(delay)
		for _, c := range []struct {
			name  string
			place func(orders.Placement) error
		}{
			{"whole", func(p orders.Placement) error { return s.Place(ctx, p) }},
			{"one_statement_at_a_time", func(p orders.Placement) error { return placeOneByOne(ctx, s, p) }},
		} {
			b.Run(fmt.Sprintf("delay=%v/%s", delay, c.name), func(b *testing.B) {
				for b.Loop() {
					b.StopTimer() // the claim of the key is not the transaction's
					n++
					p := placement(b, s, fmt.Sprint("k", n), orders.Item{ProductID: 1, Quantity: 1})
					b.StartTimer()
					if err := c.place(p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// A request whose time runs out between its batch and the commit leaves no
// transaction open: its connection does not go back to the pool inside it,
// holding the hot row's lock. (pgx sends nothing on a context already done.)
func TestATransactionOutOfTimeIsRolledBack(t *testing.T) {
	t.Parallel()
	s := openStore(t, 2, nil)
	bg := context.Background()
	if err := s.SetStock(bg, 1, 5); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	err := s.db.Pgx(bg, func(conn *pgx.Conn) error {
		for _, sql := range []string{"BEGIN", "UPDATE inventory SET stock = stock - 1 WHERE product_id = 1"} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				return err
			}
		}
		cancel() // the request's time is up before its COMMIT
		if err := endTx(ctx, conn, nil); !errors.Is(err, context.Canceled) {
			return fmt.Errorf("ending it: %w, want the request's cancellation", err)
		}
		if status := conn.PgConn().TxStatus(); status != 'I' {
			return fmt.Errorf("the connection goes back to the pool in transaction status %q, want 'I'", status)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The row is free (lock_timeout is a second) and its stock untouched.
	if got, err := s.Stock(bg, []int64{1}); err != nil || got[1] != 5 {
		t.Fatalf("stock %v %v, want 5: the decrement rolled back", got, err)
	}
	if err := s.SetStock(bg, 1, 6); err != nil {
		t.Fatalf("the row after: %v, want it unlocked", err)
	}
}
