package postgres

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/pkg/fixes"
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
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	url := testkit.Database(t)
	if err := db.Migrate(ctx, url, migrations.FS, quiet); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(url, config.DB{MaxOpen: 4, MaxIdle: 4, AcquireTimeout: time.Second, StatementTimeout: time.Second},
		fixes.NewBoard(fixes.Resilient, quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := NewStore(d, "order.created")
	s.lease = 200 * time.Millisecond
	answer := func(claim string) error {
		return s.InTx(ctx, func(ctx context.Context, tx orders.Tx) error {
			return tx.SaveReply(ctx, 7, "k1", claim, orders.Reply{Status: 201, Body: []byte(`{"id":"o1"}`)})
		})
	}

	first, err := s.ClaimKey(ctx, 7, "k1", "h")
	if err != nil || !first.Owned || first.ID == "" {
		t.Fatalf("first claim: %+v %v", first, err)
	}
	if _, err := s.ClaimKey(ctx, 7, "k1", "h"); !errors.Is(err, orders.ErrInProgress) {
		t.Fatalf("a retry while the first is in flight: %v, want ErrInProgress", err)
	}
	time.Sleep(300 * time.Millisecond) // the first never answered nor released: its lease runs out
	second, err := s.ClaimKey(ctx, 7, "k1", "h")
	if err != nil || !second.Owned || second.ID == first.ID {
		t.Fatalf("a retry past the lease: %+v %v, want the key taken over under a new claim", second, err)
	}
	if err := answer(first.ID); !errors.Is(err, orders.ErrInProgress) {
		t.Fatalf("the first answering after the takeover: %v, want ErrInProgress (no second order)", err)
	}
	if err := s.ReleaseKey(ctx, 7, "k1", first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimKey(ctx, 7, "k1", "h"); !errors.Is(err, orders.ErrInProgress) {
		t.Fatalf("after the first released its lapsed claim: %v, want the second's claim still held", err)
	}
	if err := answer(second.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // past the lease: an answer lives as long as the key
	again, err := s.ClaimKey(ctx, 7, "k1", "h")
	if err != nil || again.Owned || again.Replay == nil || again.Replay.Status != 201 {
		t.Fatalf("the key after the answer, past the lease: %+v %v, want the answer replayed", again, err)
	}
}
