package postgres

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/db"
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
	url := testkit.Database(t)
	if err := db.Migrate(ctx, url, migrations.FS, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	proxy := testkit.NewProxy(t, "127.0.0.1:5432", true)
	d, err := db.Open(strings.Replace(url, "127.0.0.1:5432", proxy.Addr, 1),
		config.DB{MaxOpen: 1, MaxIdle: 1, AcquireTimeout: time.Second, StatementTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
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
