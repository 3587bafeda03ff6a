// Package postgres is the order service's orders.Store on Postgres.
package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	lease   time.Duration // the longest a claim holds a key: orders.ClaimLease (a test shortens it)
}

// NewStore returns a Store over d; outbox rows are for subject.
func NewStore(d *db.DB, subject string) *Store {
	return &Store{db: d, subject: subject, lease: orders.ClaimLease}
}

var _ orders.Store = (*Store)(nil)

// InTx runs fn in a transaction.
func (s *Store) InTx(ctx context.Context, fn func(context.Context, orders.Tx) error) error {
	return s.db.Tx(ctx, func(g *gorm.DB) error { return fn(ctx, &tx{g: g, subject: s.subject}) })
}

// The statements that write an order, shared by the transaction sent one
// statement at a time (InTx) and the one sent whole (Place). Named arguments
// (@name) read the same to GORM and to pgx.
const (
	insertOrderSQL = `INSERT INTO orders (id, user_id, status, total_cents, created_at)
		VALUES (@id, @user_id, @status, @total_cents, @created_at)`
	insertItemSQL = `INSERT INTO order_items (order_id, product_id, quantity, price_cents)
		VALUES (@order_id, @product_id, @quantity, @price_cents)`
	// The reply is saved only where the request's claim still holds the key.
	saveReplySQL = `UPDATE idempotency_keys SET status = @status, response = @response, expires_at = @expires_at
		WHERE user_id = @user_id AND key = @key AND claim = @claim AND status IS NULL`
	appendOutboxSQL = `INSERT INTO outbox (event_id, subject, payload, headers) VALUES (@event_id, @subject, @payload, @headers)`
	// The stock is taken only if that much is there.
	takeStockSQL = `UPDATE inventory SET stock = stock - @quantity, updated_at = now()
		WHERE product_id = @product_id AND stock >= @quantity`
)

func orderArgs(o *orders.Order) map[string]any {
	return map[string]any{"id": o.ID, "user_id": o.UserID, "status": o.Status, "total_cents": o.TotalCents, "created_at": o.CreatedAt}
}

func itemArgs(orderID string, it orders.Item) map[string]any {
	return map[string]any{"order_id": orderID, "product_id": it.ProductID, "quantity": it.Quantity, "price_cents": it.PriceCents}
}

func replyArgs(userID int64, key, claim string, r orders.Reply) map[string]any {
	return map[string]any{"status": r.Status, "response": r.Body, "expires_at": time.Now().Add(orders.IdempotencyTTL),
		"user_id": userID, "key": key, "claim": claim}
}

// outboxArgs carries the W3C trace context of ctx with the event, so the
// relay's publish continues the request's trace.
func outboxArgs(ctx context.Context, subject string, ev events.OrderCreated) (map[string]any, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	headers, _ := json.Marshal(carrier)
	return map[string]any{"event_id": ev.EventID, "subject": subject, "payload": payload, "headers": headers}, nil
}

// lapsed is the error of a reply whose claim on the key ran out and was taken
// by another request: this one must not answer for the key too (its order is
// rolled back).
func lapsed(claim string) error {
	return fmt.Errorf("claim %s on the idempotency key lapsed: %w", claim, orders.ErrInProgress)
}

// Place writes p in one transaction in two round trips: BEGIN and every
// statement in one batch, which pgx sends at once (Postgres runs them in
// turn, none waiting for its answer to reach us), then COMMIT or ROLLBACK as
// their results decide. One at a time, as InTx sends them, a one-line order
// took seven round trips, each holding the connection: when Postgres answers
// slowly, the pool runs out long before the CPUs do.
func (s *Store) Place(ctx context.Context, p orders.Placement) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(insertOrderSQL, pgx.NamedArgs(orderArgs(p.Order)))
	for _, it := range p.Order.Items {
		b.Queue(insertItemSQL, pgx.NamedArgs(itemArgs(p.Order.ID, it)))
	}
	// What each check found, read once the batch has answered (an error
	// returned here would cost the connection its prepared statements).
	var claimLapsed, short bool
	b.Queue(saveReplySQL, pgx.NamedArgs(replyArgs(p.Order.UserID, p.Key, p.Claim, p.Reply))).Exec(func(tag pgconn.CommandTag) error {
		claimLapsed = tag.RowsAffected() == 0
		return nil
	})
	if p.Event != nil {
		args, err := outboxArgs(ctx, s.subject, *p.Event)
		if err != nil {
			return err
		}
		b.Queue(appendOutboxSQL, pgx.NamedArgs(args))
	}
	// fix: hot_row — the hot row last: locked by this statement, until the
	// commit one round trip later.
	for _, it := range p.Order.Items {
		b.Queue(takeStockSQL, pgx.NamedArgs(itemArgs(p.Order.ID, it))).Exec(func(tag pgconn.CommandTag) error {
			short = short || tag.RowsAffected() == 0
			return nil
		})
	}
	return s.db.Pgx(ctx, func(conn *pgx.Conn) error {
		err := conn.SendBatch(ctx, b).Close() // the first statement that failed
		switch {
		case err != nil:
		case claimLapsed:
			err = lapsed(p.Claim)
		case short:
			err = orders.ErrSoldOut
		}
		return endTx(ctx, conn, err)
	})
}

// endTx ends the transaction open on conn: COMMIT if err is nil and the
// request still has time, else ROLLBACK. The rollback gets a moment of its
// own: pgx sends nothing on a context already done, and a connection handed
// back to the pool inside a transaction would keep its locks (the hot row's).
// If even the rollback fails, db.Pgx closes the connection.
func endTx(ctx context.Context, conn *pgx.Conn, err error) error {
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		_, err = conn.Exec(ctx, "COMMIT")
		if err == nil || conn.IsClosed() {
			return err // closed mid-COMMIT: pgx cut it, and Postgres decides alone
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_, _ = conn.Exec(rctx, "ROLLBACK")
	return err
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

func (t *tx) InsertOrder(ctx context.Context, o *orders.Order) error {
	if err := t.g.Exec(insertOrderSQL, orderArgs(o)).Error; err != nil {
		return err
	}
	for _, it := range o.Items {
		if err := t.g.Exec(insertItemSQL, itemArgs(o.ID, it)).Error; err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) SaveReply(ctx context.Context, userID int64, key, claim string, r orders.Reply) error {
	res := t.g.Exec(saveReplySQL, replyArgs(userID, key, claim, r))
	if res.Error == nil && res.RowsAffected == 0 {
		return lapsed(claim)
	}
	return res.Error
}

func (t *tx) AppendOutbox(ctx context.Context, ev events.OrderCreated) error {
	args, err := outboxArgs(ctx, t.subject, ev)
	if err != nil {
		return err
	}
	return t.g.Exec(appendOutboxSQL, args).Error
}

// Order reads one order; the caller checks whose it is.
func (s *Store) Order(ctx context.Context, id string) (orders.Order, error) {
	var found []orders.Order
	err := s.db.Do(ctx, func(g *gorm.DB) error {
		var err error
		found, err = load(g, "id = @id", map[string]any{"id": id}, 1)
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
		where, args := "user_id = @user_id", map[string]any{"user_id": userID}
		if before != nil {
			where += " AND (created_at, id) < (@created_at, @id)"
			args["created_at"], args["id"] = before.CreatedAt, before.ID
		}
		var err error
		found, err = load(g, where, args, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list orders: %w", err)
	}
	return found, nil
}

// load reads the orders where selects (a condition on orders, written here,
// its values named in args), newest first, at most limit, with their lines:
// one statement, one round trip.
func load(g *gorm.DB, where string, args map[string]any, limit int) ([]orders.Order, error) {
	var rows []struct {
		ID         string
		UserID     int64
		Status     string
		TotalCents int64
		CreatedAt  time.Time
		ProductID  int64
		Quantity   int
		PriceCents int64
	}
	args["limit"] = limit
	err := g.Raw(`SELECT o.id, o.user_id, o.status, o.total_cents, o.created_at, i.product_id, i.quantity, i.price_cents
		FROM (SELECT * FROM orders WHERE `+where+` ORDER BY created_at DESC, id DESC LIMIT @limit) AS o
		JOIN order_items i ON i.order_id = o.id
		ORDER BY o.created_at DESC, o.id DESC, i.product_id`, args).Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	var out []orders.Order
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1].ID != r.ID {
			out = append(out, orders.Order{ID: r.ID, UserID: r.UserID, Status: r.Status, TotalCents: r.TotalCents, CreatedAt: r.CreatedAt.UTC()})
		}
		o := &out[len(out)-1]
		o.Items = append(o.Items, orders.Item{ProductID: r.ProductID, Quantity: r.Quantity, PriceCents: r.PriceCents})
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
