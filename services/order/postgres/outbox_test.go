package postgres

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"

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
