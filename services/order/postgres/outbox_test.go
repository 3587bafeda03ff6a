package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-shop/stampede/pkg/db"

	"github.com/stampede-shop/stampede/services/order/orders"
)

// placeEvents places n one-unit orders of product 1, each with its event, and
// returns the events' IDs in the order they were written.
func placeEvents(t testing.TB, s *Store, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		p := placement(t, s, "relay-"+uuid.NewString(), orders.Item{ProductID: 1, Quantity: 1})
		if err := s.Place(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.Event.EventID)
	}
	return ids
}

// unsent is the event IDs still waiting in the outbox, oldest first.
func unsent(t testing.TB, s *Store) []string {
	t.Helper()
	rows, err := s.db.SQL().Query(`SELECT event_id FROM outbox WHERE sent_at IS NULL ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// The relay marks sent exactly the events the broker acknowledged: one that
// failed waits for the next run, even when those after it went out; a batch
// that failed whole leaves every row as it was, and unlocked. While a relay
// holds its rows, another (a second replica) skips them.
func TestRelayMarksSentWhatWasAcknowledged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, 2, nil)
	if err := s.SetStock(ctx, 1, 100); err != nil {
		t.Fatal(err)
	}
	events := placeEvents(t, s, 3)
	nack := errors.New("no acknowledgement")

	var seen []string
	sent, err := s.RelayBatch(ctx, 10, func(ctx context.Context, batch []Pending) ([]int64, error) {
		for _, p := range batch {
			seen = append(seen, p.EventID)
			if p.Subject != "order.created" || len(p.Payload) == 0 || p.Headers == nil {
				t.Errorf("pending %+v, want the subject, the payload and the headers as written", p)
			}
		}
		// A second replica, meanwhile, finds nothing to send.
		other, err := s.RelayBatch(ctx, 10, func(_ context.Context, batch []Pending) ([]int64, error) {
			if len(batch) > 0 {
				t.Errorf("a second relay claimed %d rows another holds, want none", len(batch))
			}
			return nil, nil
		})
		if other != 0 || err != nil {
			t.Errorf("the second relay: %d sent, %v", other, err)
		}
		return []int64{batch[0].ID, batch[2].ID}, nack // the middle one failed
	})
	if !errors.Is(err, nack) || sent != 2 {
		t.Fatalf("relayed %d, %v; want 2 and the publish's error", sent, err)
	}
	if !slices.Equal(seen, events) {
		t.Fatalf("published %v, want the outbox in the order written %v", seen, events)
	}
	if got := unsent(t, s); !slices.Equal(got, events[1:2]) {
		t.Fatalf("unsent %v, want only the one not acknowledged %v", got, events[1:2])
	}

	// Nothing acknowledged: nothing marked, and the row free for the next run.
	for range 2 {
		sent, err = s.RelayBatch(ctx, 10, func(context.Context, []Pending) ([]int64, error) { return nil, nack })
		if !errors.Is(err, nack) || sent != 0 {
			t.Fatalf("relayed %d, %v; want 0 and the publish's error", sent, err)
		}
	}
	if got := unsent(t, s); !slices.Equal(got, events[1:2]) {
		t.Fatalf("unsent %v after failed runs, want %v", got, events[1:2])
	}
	sent, err = s.RelayBatch(ctx, 10, func(_ context.Context, batch []Pending) ([]int64, error) {
		return []int64{batch[0].ID}, nil
	})
	if err != nil || sent != 1 || len(unsent(t, s)) != 0 {
		t.Fatalf("relayed %d, %v, %d left; want the last one sent", sent, err, len(unsent(t, s)))
	}
}

// The order database's sweeps delete sent events once OutboxKeep is past and
// expired idempotency keys, and keep everything else: an event sent recently,
// one never sent however old, a key whose answer still holds, a claim in its
// lease.
func TestSweepsDeleteWhatIsPastItsUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, 2, nil)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := s.db.SQL().ExecContext(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	keep := fmt.Sprintf("%d hours", int(OutboxKeep.Hours()))
	for _, row := range []struct {
		name    string
		created string // ago
		sent    any    // ago, or nil: never
	}{
		{"sent-long-ago", "50 hours", keep + " 1 minute"},
		{"sent-recently", "50 hours", "1 hour"},
		{"never-sent", "50 hours", nil},
	} {
		exec(`INSERT INTO outbox (event_id, subject, payload, created_at, sent_at)
			VALUES ($1, 's', '{}', now() - $2::interval, now() - $3::interval)`, uuid.NewSHA1(uuid.Nil, []byte(row.name)), row.created, row.sent)
	}
	for _, k := range []struct {
		key, expires string
		status       any // an answer's, or nil: a claim
	}{
		{"answer-expired", "-1 second", 201}, {"lease-lapsed", "-1 second", nil}, {"answer-holds", "23 hours", 201}, {"claim-in-lease", "30 seconds", nil},
	} {
		exec(`INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at, status) VALUES (7, $1, 'h', now() + $2::interval, $3)`,
			k.key, k.expires, k.status)
	}

	swept := db.NewSweeper(s.db, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)), Sweeps...).Sweep(ctx)
	if swept["outbox"] != 1 || swept["idempotency_keys"] != 2 {
		t.Fatalf("swept %v, want 1 outbox row and 2 keys", swept)
	}
	var outbox, keys []string
	for sql, into := range map[string]*[]string{
		`SELECT event_id::text FROM outbox ORDER BY created_at`: &outbox,
		`SELECT key FROM idempotency_keys ORDER BY key`:         &keys,
	} {
		rows, err := s.db.SQL().QueryContext(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			*into = append(*into, v)
		}
		rows.Close()
	}
	wantOutbox := []string{uuid.NewSHA1(uuid.Nil, []byte("sent-recently")).String(), uuid.NewSHA1(uuid.Nil, []byte("never-sent")).String()}
	if !slices.Equal(slices.Sorted(slices.Values(outbox)), slices.Sorted(slices.Values(wantOutbox))) {
		t.Fatalf("outbox left %v, want the recent and the unsent %v", outbox, wantOutbox)
	}
	if !slices.Equal(keys, []string{"answer-holds", "claim-in-lease"}) {
		t.Fatalf("keys left %v, want the answer that holds and the claim in its lease", keys)
	}
}
