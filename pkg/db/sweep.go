package db

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// A Sweep deletes the rows of one table that are past their use: sent outbox
// events, expired idempotency keys, handled events older than any
// redelivery. Without it those tables only grow, and every index on them
// with them.
//
// A row is past its use once its Column is older than Keep. The sweeper
// deletes such rows a batch at a time (one DELETE of a million rows would
// hold a connection, and the rows' locks, for as long as it takes), each
// batch chosen FOR UPDATE SKIP LOCKED, so that replicas sweeping at once do
// not wait on each other. Column wants an index: without one, each batch
// reads the whole table.
type Sweep struct {
	Table  string        // also names the sweep in logs and metrics
	Key    string        // the primary key's columns, as in "consumer, event_id"
	Column string        // a timestamptz
	Keep   time.Duration // how long past Column a row is kept; 0: until Column
}

// statement deletes at most $1 rows past their use.
func (sw Sweep) statement() string {
	return fmt.Sprintf(`DELETE FROM %[1]s WHERE (%[2]s) IN (SELECT %[2]s FROM %[1]s
		WHERE %[3]s < now() - $2 * interval '1 second' LIMIT $1 FOR UPDATE SKIP LOCKED)`, sw.Table, sw.Key, sw.Column)
}

// SweepBatch is the most rows one statement of a sweep deletes.
const SweepBatch = 500

// Sweeper runs a service's sweeps now and then. Each batch takes its turn at
// the pool's gate like any request (Do): while the pool is busy a batch fails
// fast, and the sweep waits for its next turn.
type Sweeper struct {
	db     *DB
	sweeps []Sweep
	log    *slog.Logger
	swept  *prometheus.CounterVec
}

// NewSweeper returns a sweeper of d; its metric goes on reg.
func NewSweeper(d *DB, reg prometheus.Registerer, log *slog.Logger, sweeps ...Sweep) *Sweeper {
	s := &Sweeper{db: d, sweeps: sweeps, log: log,
		swept: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "db_swept_rows_total",
			Help: "Rows deleted by the housekeeping sweeps, by table."}, []string{"table"})}
	reg.MustRegister(s.swept)
	for _, sw := range sweeps {
		// Each table's series exists from the start, at 0: a rate over it
		// works before the first row is swept, and the metrics show which
		// sweeps the service runs.
		s.swept.WithLabelValues(sw.Table)
	}
	return s
}

// Run sweeps first after a while, then every interval, until ctx ends. The
// first sweep does not wait a whole interval: a service deployed more often
// than that would otherwise never sweep.
func (s *Sweeper) Run(ctx context.Context, first, every time.Duration) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sweep(ctx)
			t.Reset(every)
		}
	}
}

// Sweep runs every sweep once, to the end or its first failure, and returns
// the rows each deleted.
func (s *Sweeper) Sweep(ctx context.Context) map[string]int64 {
	deleted := make(map[string]int64, len(s.sweeps))
	for _, sw := range s.sweeps {
		sql, keep := sw.statement(), sw.Keep.Seconds()
		for {
			var n int64
			err := s.db.Pgx(ctx, func(conn *pgx.Conn) error {
				tag, err := conn.Exec(ctx, sql, SweepBatch, keep)
				n = tag.RowsAffected()
				return err
			})
			deleted[sw.Table] += n
			s.swept.WithLabelValues(sw.Table).Add(float64(n))
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("sweep stopped; it goes on at its next turn", "table", sw.Table, "error", err)
				}
				break
			}
			if n < SweepBatch {
				break
			}
		}
		if deleted[sw.Table] > 0 {
			s.log.Info("swept", "table", sw.Table, "rows", deleted[sw.Table])
		}
	}
	return deleted
}
