package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// Pending is an outbox row waiting to be published.
type Pending struct {
	ID      int64
	EventID string
	Subject string
	Payload []byte
	Headers map[string]string // the W3C trace context of the request that placed the order
}

// Publish sends a batch of pending events and returns the IDs of those the
// broker acknowledged; an error says why the others were not.
type Publish func(ctx context.Context, batch []Pending) (acked []int64, err error)

// The relay's statements: claim the oldest unsent rows, skipping those
// another relay holds, then mark the published ones sent.
const (
	claimOutboxSQL = `SELECT id, event_id, subject, payload, headers FROM outbox WHERE sent_at IS NULL
		ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`
	markSentSQL = `UPDATE outbox SET sent_at = now() WHERE id = ANY($1)`
)

// RelayBatch claims up to limit unsent rows with FOR UPDATE SKIP LOCKED —
// several replicas relay side by side without waiting on, or sending, each
// other's rows — publishes them, and marks those the broker acknowledged
// sent, in the same transaction. Two round trips to Postgres whatever the
// batch's size: BEGIN with the claim, then the mark with the COMMIT. A crash
// after a publish and before the commit sends that event again on the next
// run; the Nats-Msg-Id de-duplication and the consumers' idempotency absorb
// it.
func (s *Store) RelayBatch(ctx context.Context, limit int, publish Publish) (sent int, err error) {
	err = s.db.Pgx(ctx, func(conn *pgx.Conn) error {
		var batch []Pending
		claim := &pgx.Batch{}
		claim.Queue("BEGIN")
		claim.Queue(claimOutboxSQL, limit).Query(func(rows pgx.Rows) (err error) {
			batch, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Pending])
			return err
		})
		if err := conn.SendBatch(ctx, claim).Close(); err != nil {
			return endTx(ctx, conn, err)
		}
		acked, perr := publish(ctx, batch)
		if len(acked) == 0 {
			return endTx(ctx, conn, perr) // nothing to mark: COMMIT an empty claim, or ROLLBACK
		}
		mark := &pgx.Batch{}
		mark.Queue(markSentSQL, acked)
		mark.Queue("COMMIT")
		if err := conn.SendBatch(ctx, mark).Close(); err != nil {
			return endTx(ctx, conn, err)
		}
		sent = len(acked)
		return perr
	})
	return sent, err
}

// Backlog reports the unsent rows and the age of the oldest, for metrics.
func (s *Store) Backlog(ctx context.Context) (pending int64, oldest time.Duration, err error) {
	var row struct {
		N   int64
		Age float64
	}
	err = s.db.Do(ctx, func(g *gorm.DB) error {
		return g.Raw(`SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS age FROM outbox WHERE sent_at IS NULL`).Scan(&row).Error
	})
	return row.N, time.Duration(row.Age * float64(time.Second)), err
}
