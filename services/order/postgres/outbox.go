package postgres

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"
)

// Pending is an outbox row waiting to be published.
type Pending struct {
	ID      int64
	EventID string
	Subject string
	Payload []byte
	Headers map[string]string
}

// Publish sends one pending event; it must return only once the broker has
// acknowledged it.
type Publish func(ctx context.Context, p Pending) error

// RelayBatch claims up to limit unsent rows with FOR UPDATE SKIP LOCKED —
// several replicas relay side by side without waiting on, or sending, each
// other's rows — publishes them in order, and marks the published ones sent
// in the same transaction. A crash after a publish and before the commit
// sends that event again on the next run; the Nats-Msg-Id de-duplication and
// the consumers' idempotency absorb it.
func (s *Store) RelayBatch(ctx context.Context, limit int, publish Publish) (sent int, err error) {
	err = s.db.Tx(ctx, func(g *gorm.DB) error {
		var rows []struct {
			ID      int64
			EventID string
			Subject string
			Payload []byte
			Headers []byte
		}
		if err := g.Raw(`SELECT id, event_id, subject, payload, headers FROM outbox WHERE sent_at IS NULL
			ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED`, limit).Scan(&rows).Error; err != nil {
			return err
		}
		var done []int64
		var perr error
		for _, r := range rows {
			p := Pending{ID: r.ID, EventID: r.EventID, Subject: r.Subject, Payload: r.Payload}
			_ = json.Unmarshal(r.Headers, &p.Headers)
			if perr = publish(ctx, p); perr != nil {
				break // keep the order: the rest waits for the next run
			}
			done = append(done, r.ID)
		}
		if len(done) > 0 {
			if err := g.Exec(`UPDATE outbox SET sent_at = now() WHERE id IN ?`, done).Error; err != nil {
				return err
			}
		}
		sent = len(done)
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
