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

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
	"github.com/stampede-shop/stampede/services/user/account"
	"github.com/stampede-shop/stampede/services/user/migrations"
)

// Points are awarded in one round trip (one statement: the event recorded,
// the points added), counted at a proxy with a pool of one connection; an
// event for a user who does not exist records nothing.
func TestAwardPoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	proxy := testkit.NewProxy(t, "127.0.0.1:5432", true)
	d := testkit.MigratedDB(t, migrations.FS, proxy, config.DB{MaxOpen: 1})
	s := NewStore(d)
	u := &account.User{Email: "points@example.com", Name: "Points", PasswordHash: []byte("x")}
	if err := s.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	points := func() int64 {
		got, err := s.ByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Points
	}

	ev := uuid.NewString()
	if got := proxy.RoundTrips(t, nil, func() error {
		applied, err := s.AwardPoints(ctx, "test", uuid.NewString(), u.ID, 10)
		if err == nil && !applied {
			err = errors.New("a new event was not applied")
		}
		return err
	}); got != 1 {
		t.Errorf("%d round trips to award points, want 1", got)
	}
	before := points()
	for i, want := range []bool{true, false} {
		if applied, err := s.AwardPoints(ctx, "test", ev, u.ID, 7); err != nil || applied != want {
			t.Fatalf("delivery %d: applied %v, %v; want %v", i+1, applied, err, want)
		}
	}
	if got := points(); got != before+7 {
		t.Fatalf("%d points, want %d: the event counted once", got, before+7)
	}

	unknown := uuid.NewString()
	if _, err := s.AwardPoints(ctx, "test", unknown, u.ID+1000, 7); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("an unknown user: %v, want ErrNotFound", err)
	}
	var recorded int64
	if err := d.SQL().QueryRowContext(ctx, `SELECT count(*) FROM processed_events WHERE event_id = $1`, unknown).Scan(&recorded); err != nil || recorded != 0 {
		t.Fatalf("the unknown user's event recorded %d times (%v), want 0", recorded, err)
	}
}

// The consumer's records of handled events are swept once the stream can no
// longer deliver their events again (events.StreamMaxAge), and not before.
func TestHandledEventsAreSweptAfterTheStreamsAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := testkit.MigratedDB(t, migrations.FS, nil, config.DB{MaxOpen: 1})
	age := fmt.Sprintf("%d hours", int(events.StreamMaxAge.Hours()))
	for id, ago := range map[string]string{"past": age + " 1 minute", "within": age + " -1 minute", "new": "0"} {
		if _, err := d.SQL().ExecContext(ctx, `INSERT INTO processed_events (consumer, event_id, processed_at)
			VALUES ('test', $1, now() - $2::interval)`, id, ago); err != nil {
			t.Fatal(err)
		}
	}
	swept := db.NewSweeper(d, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)), events.HandledSweep).Sweep(ctx)
	var left []string
	rows, err := d.SQL().QueryContext(ctx, `SELECT event_id FROM processed_events ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	if swept["processed_events"] != 1 || !slices.Equal(left, []string{"new", "within"}) {
		t.Fatalf("swept %v, left %v; want 1 swept, the two within the stream's age left", swept, left)
	}
}
