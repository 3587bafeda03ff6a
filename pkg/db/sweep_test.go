package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

// A sweep deletes everything past its use, batch after batch, and nothing
// else; the next sweep finds nothing left to delete.
func TestSweepDeletesWhatIsPastItsUseInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := open(t, testkit.Database(t), fixes.Resilient, 2)
	const old, fresh = 2*db.SweepBatch + 234, 10
	err := d.Do(ctx, func(g *gorm.DB) error {
		return errors.Join(
			g.Exec(`CREATE TABLE things (id bigserial PRIMARY KEY, at timestamptz NOT NULL)`).Error,
			g.Exec(`INSERT INTO things (at) SELECT now() - interval '2 hours' FROM generate_series(1, ?)`, old).Error,
			g.Exec(`INSERT INTO things (at) SELECT now() FROM generate_series(1, ?)`, fresh).Error)
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := db.NewSweeper(d, reg, quiet, db.Sweep{Table: "things", Key: "id", Column: "at", Keep: time.Hour})

	if got := s.Sweep(ctx)["things"]; got != old {
		t.Fatalf("swept %d rows, want the %d past their use", got, old)
	}
	if again := s.Sweep(ctx)["things"]; again != 0 {
		t.Fatalf("the second sweep deleted %d rows, want 0", again)
	}
	var left int64
	if err := d.Do(ctx, func(g *gorm.DB) error { return g.Raw(`SELECT count(*) FROM things`).Scan(&left).Error }); err != nil || left != fresh {
		t.Fatalf("%d rows left (%v), want the %d fresh ones", left, err, fresh)
	}
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || len(families[0].GetMetric()) != 1 {
		t.Fatalf("metrics %v %v, want db_swept_rows_total for one table", families, err)
	}
	if n := families[0].GetMetric()[0].GetCounter().GetValue(); families[0].GetName() != "db_swept_rows_total" || n != old {
		t.Fatalf("%s = %v, want db_swept_rows_total = %d", families[0].GetName(), n, old)
	}
}

// Run sweeps soon after it starts, without waiting a whole interval, and
// stops when its context ends.
func TestSweeperRunsFirstSoon(t *testing.T) {
	t.Parallel()
	d := open(t, testkit.Database(t), fixes.Resilient, 2)
	ctx, cancel := context.WithCancel(context.Background())
	count := func() (n int64) {
		if err := d.Do(ctx, func(g *gorm.DB) error { return g.Raw(`SELECT count(*) FROM things`).Scan(&n).Error }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	err := d.Do(ctx, func(g *gorm.DB) error {
		return errors.Join(
			g.Exec(`CREATE TABLE things (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`).Error,
			g.Exec(`INSERT INTO things SELECT FROM generate_series(1, 3)`).Error)
	})
	if err != nil {
		t.Fatal(err)
	}
	s := db.NewSweeper(d, prometheus.NewRegistry(), quiet, db.Sweep{Table: "things", Key: "id", Column: "at"})
	done := make(chan struct{})
	go func() { s.Run(ctx, 10*time.Millisecond, time.Hour); close(done) }()
	for deadline := time.Now().Add(10 * time.Second); count() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing swept 10 s after the sweeper started, with its first sweep due after 10 ms")
		}
	}
	cancel()
	<-done
}
