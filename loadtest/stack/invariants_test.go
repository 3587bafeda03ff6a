package stack

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

// An order whose order.created waits in the outbox, unsent, is pending — the
// relay sends it when the order service runs again — and not lost; an order
// that no consumer heard of and whose event is not waiting is lost. (The
// tables are cut down to the columns the check reads; the replay's smoke test
// runs the check on the services' own schemas.)
func TestPendingOutboxEventsAreNotLost(t *testing.T) {
	ctx := context.Background()
	databases := map[string]string{}
	for svc, schema := range map[string]string{
		"order": `CREATE TABLE orders (id uuid PRIMARY KEY);
			CREATE TABLE order_items (order_id uuid, product_id bigint, quantity int);
			CREATE TABLE inventory (product_id bigint, stock bigint);
			CREATE TABLE outbox (id bigserial, sent_at timestamptz);
			INSERT INTO orders VALUES ('00000000-0000-0000-0000-000000000001'), ('00000000-0000-0000-0000-000000000002'),
				('00000000-0000-0000-0000-000000000003');
			INSERT INTO outbox (sent_at) VALUES (now()), (now()), (NULL);`, // the third order's event: not sent yet
		"search": `CREATE TABLE processed_events (id text); CREATE TABLE products (id bigint, sold bigint);
			INSERT INTO processed_events VALUES ('e1');`,
		"user": `CREATE TABLE processed_events (id text); INSERT INTO processed_events VALUES ('e1');`,
	} {
		databases[svc] = testkit.Database(t)
		conn, err := pgx.Connect(ctx, databases[svc])
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, schema)
		conn.Close(ctx)
		if err != nil {
			t.Fatalf("%s: %v", svc, err)
		}
	}
	v, err := check(ctx, databases, nil, 0, 0)
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
