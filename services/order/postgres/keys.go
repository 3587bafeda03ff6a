package postgres

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/services/order/orders"
)

// The statements of an idempotency key.
const (
	// A new key is inserted; an expired one (an answer past the key's life,
	// or a claim past its lease whose request never answered) is free again
	// and taken over; a live one is left as it is. The lease is counted on
	// Postgres's clock, the one that judges it.
	claimKeySQL = `INSERT INTO idempotency_keys (user_id, key, request_hash, claim, expires_at)
		VALUES (@user_id, @key, @request_hash, @claim, now() + make_interval(secs => @lease))
		ON CONFLICT (user_id, key) DO UPDATE
		SET request_hash = EXCLUDED.request_hash, claim = EXCLUDED.claim, status = NULL, response = NULL,
			created_at = now(), expires_at = EXCLUDED.expires_at
		WHERE idempotency_keys.expires_at < now()`
	readKeySQL = `SELECT request_hash, status, response FROM idempotency_keys
		WHERE user_id = @user_id AND key = @key AND expires_at >= now()`
)

// ClaimKey inserts (user, key) or reads what an earlier request left there,
// and the stock of products if there are any: one batch, one round trip.
func (s *Store) ClaimKey(ctx context.Context, userID int64, key, hash string, products []int64) (orders.Claim, error) {
	id := uuid.NewString()
	var claim orders.Claim
	var found []keyRow
	b := &pgx.Batch{}
	lease := min(s.lease, orders.Lease(ctx))
	b.Queue(claimKeySQL, pgx.NamedArgs{"user_id": userID, "key": key, "request_hash": hash, "claim": id,
		"lease": lease.Seconds()}).Exec(func(tag pgconn.CommandTag) error {
		claim.Owned = tag.RowsAffected() == 1
		return nil
	})
	// What the key holds, read in the same batch: the earlier request's
	// state if the key was not ours to claim.
	b.Queue(readKeySQL, pgx.NamedArgs{"user_id": userID, "key": key}).Query(func(rows pgx.Rows) error {
		var err error
		found, err = pgx.CollectRows(rows, scanKeyRow)
		return err
	})
	if len(products) > 0 {
		claim.Stock = make(map[int64]int64, len(products))
		b.Queue(`SELECT product_id, stock FROM inventory WHERE product_id = ANY(@ids)`, pgx.NamedArgs{"ids": products}).Query(func(rows pgx.Rows) error {
			var id, stock int64
			_, err := pgx.ForEachRow(rows, []any{&id, &stock}, func() error { claim.Stock[id] = stock; return nil })
			return err
		})
	}
	// Without BEGIN, pgx sends a batch as one implicit transaction.
	if err := s.db.Pgx(ctx, func(conn *pgx.Conn) error { return conn.SendBatch(ctx, b).Close() }); err != nil {
		return orders.Claim{}, err
	}
	if claim.Owned {
		claim.ID = id
		return claim, nil
	}
	return readKey(claim, found, hash)
}

// PeekKey reads (user, key) without claiming it.
func (s *Store) PeekKey(ctx context.Context, userID int64, key, hash string) (orders.Claim, error) {
	var found []keyRow
	err := s.db.Do(ctx, func(g *gorm.DB) error {
		return g.Raw(readKeySQL, map[string]any{"user_id": userID, "key": key}).Scan(&found).Error
	})
	if err != nil {
		return orders.Claim{}, err
	}
	return readKey(orders.Claim{}, found, hash)
}

// keyRow is what a request left under its key.
type keyRow struct {
	RequestHash string
	Status      *int
	Response    []byte
}

func scanKeyRow(row pgx.CollectableRow) (k keyRow, err error) {
	err = row.Scan(&k.RequestHash, &k.Status, &k.Response)
	return k, err
}

// readKey tells claim what the key's earlier request left (found: nothing if
// the key is free): its answer to replay, or that it is another request's.
func readKey(claim orders.Claim, found []keyRow, hash string) (orders.Claim, error) {
	switch {
	case len(found) == 0:
		return claim, nil
	case found[0].RequestHash != hash:
		return claim, orders.ErrKeyReused
	case found[0].Status == nil:
		return claim, orders.ErrInProgress
	}
	claim.Replay = &orders.Reply{Status: *found[0].Status, Body: found[0].Response}
	return claim, nil
}

// ReleaseKey deletes a key whose request did not complete, if claim still
// holds it. It waits for a connection until ctx's deadline, not only the
// pool's acquire timeout: the request failed, often for want of one, and a
// key left behind answers the client's retry with 409 until its claim lapses.
func (s *Store) ReleaseKey(ctx context.Context, userID int64, key, claim string) error {
	return s.db.Do(db.UntilDeadline(ctx), func(g *gorm.DB) error {
		return g.Exec(`DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND claim = ? AND status IS NULL`, userID, key, claim).Error
	})
}
