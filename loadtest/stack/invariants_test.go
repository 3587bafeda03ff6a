package stack

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

// An order whose order.created waits in the outbox, unsent, is pending — the
// relay sends it when the order service runs again — and not lost; an order
// that no consumer heard of and whose event is not waiting is lost. (The
// tables are cut down to the columns the check reads; the replay's smoke test
// runs the check on the services' own schemas.)
func TestPendingOutboxEventsAreNotLost(t *testing.T) {
	ctx := context.Background()
	databases := cutDown(t, map[string]string{
		"order": `INSERT INTO orders VALUES ('00000000-0000-0000-0000-000000000001'), ('00000000-0000-0000-0000-000000000002'),
				('00000000-0000-0000-0000-000000000003');
			INSERT INTO outbox (sent_at) VALUES (now()), (now()), (NULL);`, // the third order's event: not sent yet
		"search": `INSERT INTO processed_events VALUES ('e1');`,
		"user":   `INSERT INTO processed_events VALUES ('e1');`,
	})
	v, err := check(ctx, databases, nil, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Three orders: the first heard of, the third waiting in the outbox, the
	// second neither — sent (its row says so) and never handled.
	if v.Stored != 3 || v.EventsPending != 1 || v.EventsLost != 1 {
		t.Fatalf("stored %d, pending %d, lost %d; want 3, 1, 1", v.Stored, v.EventsPending, v.EventsLost)
	}
	// (The stock is not set up here: only what Broken says of the events counts.)
	if b := v.Broken(true); !slices.Contains(b, "1 order.created events lost") {
		t.Fatalf("broken %q; want the one lost event, not the pending one", b)
	}
}

// What must never happen is counted when it does: an acknowledged order
// that is not stored, units sold beyond a product's stock, stock and sales
// that do not add up, a sale a consumer counted twice. (The replay's runs
// find none of them; this is the check that it would.)
func TestBrokenInvariantsAreCounted(t *testing.T) {
	ctx := context.Background()
	products := catalog.Generate(0)
	hot := products[0]
	var inventory strings.Builder
	for i, p := range products {
		stock := p.Stock
		if i == 0 {
			stock = 0 // sold out, but more was sold than it had: stock + sold ≠ its initial stock
		}
		fmt.Fprintf(&inventory, "INSERT INTO inventory VALUES (%d, %d);\n", p.ID, stock)
	}
	stored := "00000000-0000-0000-0000-000000000001"
	databases := cutDown(t, map[string]string{
		"order": `INSERT INTO orders VALUES ('` + stored + `');
			INSERT INTO outbox (sent_at) VALUES (now());
			` + fmt.Sprintf("INSERT INTO order_items VALUES ('%s', %d, %d);\n", stored, hot.ID, hot.Stock+2) + inventory.String(),
		"search": `INSERT INTO processed_events VALUES ('e1');
			` + fmt.Sprintf("INSERT INTO products VALUES (%d, %d);", hot.ID, hot.Stock+2+3), // three units counted twice
		"user": `INSERT INTO processed_events VALUES ('e1');`,
	})
	v, err := check(ctx, databases, []string{stored, "00000000-0000-0000-0000-000000000002"}, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Invariants{Acknowledged: 2, Stored: 1, Missing: 1, OversoldUnits: 2, StockDrift: 1, EventsExpected: 1, EventsTwice: 3}
	if v != want {
		t.Fatalf("invariants %+v\nwant       %+v", v, want)
	}
	if b := v.Broken(true); len(b) != 4 {
		t.Fatalf("broken %q; want the missing order, the oversold units, the drift and the units applied twice", b)
	}
}

// cutDown creates the three services' databases with the tables the check
// reads, cut down to the columns it reads, and runs each service's inserts
// in its own. It returns their URLs by service.
func cutDown(t *testing.T, inserts map[string]string) map[string]string {
	t.Helper()
	databases := map[string]string{}
	for svc, schema := range map[string]string{
		"order": `CREATE TABLE orders (id uuid PRIMARY KEY);
			CREATE TABLE order_items (order_id uuid, product_id bigint, quantity int);
			CREATE TABLE inventory (product_id bigint, stock bigint);
			CREATE TABLE outbox (id bigserial, sent_at timestamptz);`,
		"search": `CREATE TABLE processed_events (id text); CREATE TABLE products (id bigint, sold bigint);`,
		"user":   `CREATE TABLE processed_events (id text);`,
	} {
		databases[svc] = testkit.Database(t)
		conn, err := pgx.Connect(t.Context(), databases[svc])
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(t.Context(), schema+"\n"+inserts[svc])
		conn.Close(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", svc, err)
		}
	}
	return databases
}

// The wait for the consumers ends early only when nothing more is coming:
// the count has stood still for 3 s and no event is in flight to them. An
// event whose delivery was lost comes again after the consumer's AckWait;
// it is waited for, not counted lost. (The counts are fakes here; the test
// below reads a real stream's.)
func TestTheConsumersAreWaitedForWhileAnEventIsInFlight(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		arrivesAt int  // the call of handled from which the last event is counted
		inFlight  bool // whether inflight says so until then
		known     bool // whether inflight is known at all
		want      int
	}{
		{"in flight: waited for", 12, true, true, 5},
		{"nothing in flight: lost", 1_000, false, true, 4},
		{"not known: the count decides", 12, true, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			handled := func(context.Context) (int, error) {
				calls++
				if calls >= tc.arrivesAt {
					return 5, nil
				}
				return 4, nil
			}
			var inflight counter
			if tc.known {
				inflight = func(context.Context) (int, error) {
					if tc.inFlight && calls < tc.arrivesAt {
						return 1, nil
					}
					return 0, nil
				}
			}
			n, err := awaitConsumers(ctx, handled, inflight, 5, time.Minute)
			if err != nil || n != tc.want {
				t.Fatalf("awaitConsumers: %d, %v after %d counts; want %d", n, err, calls, tc.want)
			}
		})
	}
}

// eventsInFlight counts, across the consumers of the stack's stream, the
// events delivered and not acknowledged and those not delivered yet.
func TestEventsInFlightReadsTheConsumers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, ns := testkit.NATS(t)
	names := events.Orders(ns)
	if err := events.EnsureOrdersStream(ctx, js, names); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, names.Stream, jetstream.ConsumerConfig{Durable: "points",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"e1", "e2"} {
		if _, err := js.Publish(ctx, names.OrderCreated, []byte(`{}`), jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	s := &Native{deps: Deps{NATS: testkit.NATSURL()}, run: ns}
	count := func(want int, when string) {
		t.Helper()
		if n, err := s.eventsInFlight(ctx); err != nil || n != want {
			t.Fatalf("%s: %d in flight, %v; want %d", when, n, err, want)
		}
	}
	count(2, "both undelivered")
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	if len(got) != 1 {
		t.Fatalf("fetched %d messages; want 1", len(got))
	}
	count(2, "one delivered, not acknowledged")
	if err := got[0].DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	count(1, "one acknowledged")
}
