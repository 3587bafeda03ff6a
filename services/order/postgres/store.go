// Package postgres is the order service's orders.Store on Postgres.
package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/services/order/orders"
)

// Store implements orders.Store.
type Store struct {
	db      *db.DB
	subject string        // of the outbox's events
	lease   time.Duration // orders.ClaimLease (a test shortens it)
}

// NewStore returns a Store over d; outbox rows are for subject.
func NewStore(d *db.DB, subject string) *Store {
	return &Store{db: d, subject: subject, lease: orders.ClaimLease}
}

var _ orders.Store = (*Store)(nil)

// ClaimKey inserts (user, key) or reads what an earlier request left there.
func (s *Store) ClaimKey(ctx context.Context, userID int64, key, hash string) (orders.Claim, error) {
	var claim orders.Claim
	err := s.db.Do(ctx, func(g *gorm.DB) error {
		// An expired key is free again: an answer past the key's life, or
		// a claim past its lease whose request never answered.
		if err := g.Exec(`DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND expires_at < now()`, userID, key).Error; err != nil {
			return err
		}
		id := uuid.NewString()
		res := g.Exec(`INSERT INTO idempotency_keys (user_id, key, request_hash, claim, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			userID, key, hash, id, time.Now().Add(s.lease))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 1 {
			claim.Owned, claim.ID = true, id
			return nil
		}
		var err error
		claim, _, err = readKey(g, userID, key, hash)
		return err
	})
	return claim, err
}

// PeekKey reads (user, key) without claiming it.
func (s *Store) PeekKey(ctx context.Context, userID int64, key, hash string) (orders.Claim, error) {
	var claim orders.Claim
	err := s.db.Do(ctx, func(g *gorm.DB) error {
		var err error
		claim, _, err = readKey(g, userID, key, hash)
		return err
	})
	return claim, err
}

// readKey reads what a request left under (user, key); found is false if
// nothing (unexpired) is there.
func readKey(g *gorm.DB, userID int64, key, hash string) (claim orders.Claim, found bool, err error) {
	var rows []struct {
		RequestHash string
		Status      *int
		Response    []byte
	}
	if err := g.Raw(`SELECT request_hash, status, response FROM idempotency_keys WHERE user_id = ? AND key = ? AND expires_at >= now()`,
		userID, key).Scan(&rows).Error; err != nil {
		return claim, false, err
	}
	switch {
	case len(rows) == 0:
		return claim, false, nil
	case rows[0].RequestHash != hash:
		return claim, true, orders.ErrKeyReused
	case rows[0].Status == nil:
		return claim, true, orders.ErrInProgress
	}
	claim.Replay = &orders.Reply{Status: *rows[0].Status, Body: rows[0].Response}
	return claim, true, nil
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

// InTx runs fn in a transaction.
func (s *Store) InTx(ctx context.Context, fn func(context.Context, orders.Tx) error) error {
	return s.db.Tx(ctx, func(g *gorm.DB) error { return fn(ctx, &tx{g: g, subject: s.subject}) })
}

type tx struct {
	g       *gorm.DB
	subject string
}

func (t *tx) LockStock(ctx context.Context, ids []int64) (map[int64]int64, error) {
	var rows []struct{ ProductID, Stock int64 }
	err := t.g.Raw(`SELECT product_id, stock FROM inventory WHERE product_id IN ? ORDER BY product_id FOR UPDATE`, ids).Scan(&rows).Error
	stock := make(map[int64]int64, len(rows))
	for _, r := range rows {
		stock[r.ProductID] = r.Stock
	}
	return stock, err
}

func (t *tx) Decrement(ctx context.Context, productID int64, qty int) error {
	return t.g.Exec(`UPDATE inventory SET stock = stock - ?, updated_at = now() WHERE product_id = ?`, qty, productID).Error
}

func (t *tx) DecrementIfAvailable(ctx context.Context, productID int64, qty int) (bool, error) {
	res := t.g.Exec(`UPDATE inventory SET stock = stock - @q, updated_at = now() WHERE product_id = @id AND stock >= @q`,
		map[string]any{"q": qty, "id": productID})
	return res.RowsAffected == 1, res.Error
}

type orderRow struct {
	ID         string
	UserID     int64
	Status     string
	TotalCents int64
	CreatedAt  time.Time
}

func (orderRow) TableName() string { return "orders" }

type itemRow struct {
	OrderID    string
	ProductID  int64
	Quantity   int
	PriceCents int64
}

func (itemRow) TableName() string { return "order_items" }

func (t *tx) InsertOrder(ctx context.Context, o *orders.Order) error {
	if err := t.g.Create(&orderRow{ID: o.ID, UserID: o.UserID, Status: o.Status, TotalCents: o.TotalCents, CreatedAt: o.CreatedAt}).Error; err != nil {
		return err
	}
	items := make([]itemRow, len(o.Items))
	for i, it := range o.Items {
		items[i] = itemRow{OrderID: o.ID, ProductID: it.ProductID, Quantity: it.Quantity, PriceCents: it.PriceCents}
	}
	return t.g.Create(&items).Error
}

func (t *tx) SaveReply(ctx context.Context, userID int64, key, claim string, r orders.Reply) error {
	res := t.g.Exec(`UPDATE idempotency_keys SET status = ?, response = ?, expires_at = ? WHERE user_id = ? AND key = ? AND claim = ? AND status IS NULL`,
		r.Status, r.Body, time.Now().Add(orders.IdempotencyTTL), userID, key, claim)
	if res.Error == nil && res.RowsAffected == 0 {
		// The lease ran out and another request took the key: this one
		// must not answer for it too (its order is rolled back).
		return fmt.Errorf("claim %s on the idempotency key lapsed: %w", claim, orders.ErrInProgress)
	}
	return res.Error
}

// AppendOutbox stores the event with the W3C trace context of ctx, so the
// relay's publish continues the request's trace.
func (t *tx) AppendOutbox(ctx context.Context, ev events.OrderCreated) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	headers, _ := json.Marshal(carrier)
	return t.g.Exec(`INSERT INTO outbox (event_id, subject, payload, headers) VALUES (?, ?, ?, ?)`, ev.EventID, t.subject, payload, headers).Error
}

// Order reads one order; the caller checks whose it is.
func (s *Store) Order(ctx context.Context, id string) (orders.Order, error) {
	var found []orders.Order
	err := s.db.Do(ctx, func(g *gorm.DB) error {
		var err error
		found, err = load(g.Where("id = ?", id), 1)
		return err
	})
	if err != nil {
		return orders.Order{}, fmt.Errorf("postgres: order: %w", err)
	}
	if len(found) == 0 {
		return orders.Order{}, orders.ErrNotFound
	}
	return found[0], nil
}

// List reads a page of userID's orders, newest first, before the cursor.
func (s *Store) List(ctx context.Context, userID int64, before *orders.ListCursor, limit int) ([]orders.Order, error) {
	var found []orders.Order
	err := s.db.Do(ctx, func(g *gorm.DB) error {
		q := g.Where("user_id = ?", userID)
		if before != nil {
			q = q.Where("(created_at, id) < (?, ?)", before.CreatedAt, before.ID)
		}
		var err error
		found, err = load(q, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list orders: %w", err)
	}
	return found, nil
}

func load(q *gorm.DB, limit int) ([]orders.Order, error) {
	var rows []orderRow
	if err := q.Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	var items []itemRow
	if err := q.Session(&gorm.Session{NewDB: true}).Where("order_id IN ?", ids).Order("product_id").Find(&items).Error; err != nil {
		return nil, err
	}
	byOrder := map[string][]orders.Item{}
	for _, it := range items {
		byOrder[it.OrderID] = append(byOrder[it.OrderID], orders.Item{ProductID: it.ProductID, Quantity: it.Quantity, PriceCents: it.PriceCents})
	}
	out := make([]orders.Order, len(rows))
	for i, r := range rows {
		out[i] = orders.Order{ID: r.ID, UserID: r.UserID, Status: r.Status, TotalCents: r.TotalCents, Items: byOrder[r.ID], CreatedAt: r.CreatedAt.UTC()}
	}
	return out, nil
}

// Stock reads the stock of products.
func (s *Store) Stock(ctx context.Context, ids []int64) (map[int64]int64, error) {
	var rows []struct{ ProductID, Stock int64 }
	err := s.db.Do(ctx, func(g *gorm.DB) error {
		return g.Raw(`SELECT product_id, stock FROM inventory WHERE product_id IN ?`, ids).Scan(&rows).Error
	})
	stock := make(map[int64]int64, len(rows))
	for _, r := range rows {
		stock[r.ProductID] = r.Stock
	}
	return stock, err
}

// Seed inserts the inventory of the first n catalog products; rows already
// there keep their stock, so seeding twice is harmless.
func (s *Store) Seed(ctx context.Context, n int) error {
	type inventoryRow struct {
		ProductID int64
		Stock     int64
	}
	cat := catalog.Generate(n)
	rows := make([]inventoryRow, len(cat))
	for i, p := range cat {
		rows[i] = inventoryRow{ProductID: p.ID, Stock: p.Stock}
	}
	return s.db.Do(ctx, func(g *gorm.DB) error {
		return g.Table("inventory").Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(rows, 1000).Error
	})
}

// SetStock sets one product's stock (tests, and resetting a sale).
func (s *Store) SetStock(ctx context.Context, productID, stock int64) error {
	return s.db.Do(ctx, func(g *gorm.DB) error {
		return g.Exec(`INSERT INTO inventory (product_id, stock) VALUES (?, ?) ON CONFLICT (product_id) DO UPDATE SET stock = EXCLUDED.stock`, productID, stock).Error
	})
}
