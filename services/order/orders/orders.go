// Package orders is the order service's domain: orders, the request to place
// one, idempotency, and the two forms of the flash-sale path (see service.go).
// It imports no adapter; Postgres, Redis, NATS and the other services adapt
// to the interfaces declared here.
package orders

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stampede-shop/stampede/pkg/events"
)

// Order is a placed order.
type Order struct {
	ID         string    `json:"id"`
	UserID     int64     `json:"-"`
	Status     string    `json:"status"`
	TotalCents int64     `json:"total_cents"`
	Items      []Item    `json:"items"`
	CreatedAt  time.Time `json:"created_at"`
}

// Item is one line of an order.
type Item struct {
	ProductID  int64 `json:"product_id"`
	Quantity   int   `json:"quantity"`
	PriceCents int64 `json:"price_cents"`
}

// StatusCreated is the status of a placed order.
const StatusCreated = "created"

// Limits of a request.
const (
	MaxItems       = 20
	MaxQuantity    = 10 // per line: a flash sale is not for resellers
	MaxKeyBytes    = 255
	IdempotencyTTL = 24 * time.Hour
	// ClaimLease is how long a request in flight holds its idempotency key
	// before another request with the key may take it over, when nothing
	// bounds the request's time (see Lease). A request that failed and
	// could not release the key (the database out of reach) leaves it
	// locked this long, not a day.
	ClaimLease = 30 * time.Second
	// LeaseMargin is what a request's lease adds to its deadline and the
	// release after it, for a statement the deadline interrupts.
	LeaseMargin = time.Second
	// ReleaseTimeout bounds the release of the key of a request that failed,
	// which runs even when the request's deadline has passed, and may wait
	// all of it for a connection (not only the pool's 100 ms). Unbounded, it
	// could wait at the pool's gate and then up to the statement_timeout
	// (2 s) behind a slow database, on top of the 3 s the request had
	// already spent: past the replay shoppers' 5 s.
	ReleaseTimeout = 500 * time.Millisecond
)

// Lease is how long a request in ctx holds the idempotency key it claims:
// as long as it can still be at work on it, and no longer, for a key it
// failed and could not release answers the client's retry with
// ErrInProgress until the lease is out, though nothing is being placed.
func Lease(ctx context.Context) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ClaimLease
	}
	// fix: timeouts — a request with a deadline stops at it: its lease is
	// what is left of it, the release after it and a margin (at most 4.5 s
	// with the services' 3 s deadline), not the 30 s of a request nothing
	// bounds.
	return min(ClaimLease, time.Until(deadline)+ReleaseTimeout+LeaseMargin)
}

// Errors of the domain; the HTTP edge maps them in one place.
var (
	ErrSoldOut        = errors.New("orders: sold out")
	ErrNotFound       = errors.New("orders: not found")
	ErrUnknownProduct = errors.New("orders: unknown product")
	ErrUnknownUser    = errors.New("orders: unknown user")
	ErrKeyReused      = errors.New("orders: idempotency key reused with a different request")
	ErrInProgress     = errors.New("orders: a request with this idempotency key is in progress")
)

// Request is the body of POST /v1/orders.
type Request struct {
	Items []struct {
		ProductID int64 `json:"product_id"`
		Quantity  int   `json:"quantity"`
	} `json:"items"`
}

// Valid reports the problems of r by field.
func (r Request) Valid(context.Context) map[string]string {
	problems := map[string]string{}
	switch n := len(r.Items); {
	case n == 0:
		problems["items"] = "must hold at least one item"
	case n > MaxItems:
		problems["items"] = fmt.Sprintf("must hold at most %d items", MaxItems)
	}
	seen := map[int64]bool{}
	for i, it := range r.Items {
		field := fmt.Sprintf("items[%d]", i)
		switch {
		case it.ProductID <= 0:
			problems[field+".product_id"] = "must be a positive integer"
		case seen[it.ProductID]:
			problems[field+".product_id"] = "appears twice; put the total quantity on one line"
		}
		seen[it.ProductID] = true
		if it.Quantity < 1 || it.Quantity > MaxQuantity {
			problems[field+".quantity"] = fmt.Sprintf("must be from 1 to %d", MaxQuantity)
		}
	}
	return problems
}

// Lines returns the requested lines sorted by product id: locks and Redis
// keys are always taken in the same order, so two orders can never deadlock.
func (r Request) Lines() []Item {
	lines := make([]Item, len(r.Items))
	for i, it := range r.Items {
		lines[i] = Item{ProductID: it.ProductID, Quantity: it.Quantity}
	}
	slices.SortFunc(lines, func(a, b Item) int { return int(a.ProductID - b.ProductID) })
	return lines
}

// Hash identifies the request's content for idempotency: the same key with a
// different body is a client bug, answered 422.
func (r Request) Hash() string {
	h := sha256.New()
	for _, l := range r.Lines() {
		fmt.Fprintf(h, "%d:%d;", l.ProductID, l.Quantity)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Reply is a stored answer to an idempotent request.
type Reply struct {
	Status int
	Body   []byte
}

// Claim is the outcome of claiming an idempotency key.
type Claim struct {
	Owned  bool   // this request is the first: go ahead
	ID     string // names an owned claim: only it can answer for the key, or release it
	Replay *Reply // a finished request's answer, to send again
	// Stock is the stock of the products ClaimKey was asked about, as it
	// read them, for the gate to build a counter it lacks without a read of
	// its own.
	Stock map[int64]int64
}

// Store keeps orders, stock, idempotency keys and the outbox.
type Store interface {
	// ClaimKey inserts the key, or reports the earlier request's state:
	// ErrKeyReused for another body, ErrInProgress while it runs. A claim
	// holds the key for Lease(ctx); one left in flight past it is taken
	// over. With products, it reads their stock too (Claim.Stock), in the
	// same round trip.
	ClaimKey(ctx context.Context, userID int64, key, hash string, products []int64) (Claim, error)
	// PeekKey reads the key's state without claiming it (a read: no write,
	// no commit): a finished request's Replay, ErrKeyReused, ErrInProgress,
	// or a zero Claim if the key is free.
	PeekKey(ctx context.Context, userID int64, key, hash string) (Claim, error)
	// ReleaseKey forgets a key whose request failed, so the client may
	// retry with it; only under the claim that holds it.
	ReleaseKey(ctx context.Context, userID int64, key, claim string) error
	// InTx runs fn in one transaction: all its writes happen, or none.
	// Each statement is a round trip, in the order fn makes them.
	InTx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// Place writes p in one transaction: the order and its lines, the key's
	// reply (if p.Claim still holds the key), the event if p has one, and
	// last each line's stock, taken off only if that much is there. So the
	// hot row is locked by the last statement, until the commit. Short stock
	// is ErrSoldOut, a lapsed claim ErrInProgress; either way nothing is
	// written. The statements go together, not one round trip each.
	Place(ctx context.Context, p Placement) error

	Order(ctx context.Context, id string) (Order, error)
	List(ctx context.Context, userID int64, before *ListCursor, limit int) ([]Order, error)
	Stock(ctx context.Context, productIDs []int64) (map[int64]int64, error)
}

// Tx is what an order's transaction can do one statement at a time (InTx):
// the naive path's.
type Tx interface {
	// LockStock reads stock with SELECT ... FOR UPDATE: the rows stay
	// locked until the transaction ends.
	LockStock(ctx context.Context, productIDs []int64) (map[int64]int64, error)
	// Decrement takes qty off the stock unconditionally (the caller checked).
	Decrement(ctx context.Context, productID int64, qty int) error
	InsertOrder(ctx context.Context, o *Order) error
	// SaveReply stores the answer under the key, for the key's whole life,
	// if claim still holds it; if it was taken over (the lease ran out), the
	// error is ErrInProgress and the transaction must not commit.
	SaveReply(ctx context.Context, userID int64, key, claim string, r Reply) error
	AppendOutbox(ctx context.Context, ev events.OrderCreated) error
}

// Placement is what placing an order writes.
type Placement struct {
	Order *Order
	Key   string // the idempotency key, the order's user's
	Claim string // the request's claim on it
	Reply Reply  // the answer the key keeps
	// Event goes to the outbox, in the order's transaction (fix: outbox);
	// nil without the fix, when it is published after the commit.
	Event *events.OrderCreated
}

// ListCursor is where a page of the caller's orders ended.
type ListCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"i"`
}

// Gate admits or refuses units of hot stock before the database is touched.
type Gate interface {
	// Take reserves every line or none; false means sold out. A counter
	// the gate lacks it builds from stock if that holds the product, else
	// from Postgres.
	Take(ctx context.Context, lines []Item, stock map[int64]int64) (bool, error)
	// Give returns reserved units after a failed transaction.
	Give(ctx context.Context, lines []Item) error
	// SoldOut reports, without reserving anything, whether the gate knows
	// that a line cannot be served.
	SoldOut(ctx context.Context, lines []Item) (bool, error)
}

// Users tells whether a user exists (the user service).
type Users interface {
	Exists(ctx context.Context, userID int64) error
}

// Catalog gives current prices (the search service).
type Catalog interface {
	Price(ctx context.Context, productID int64) (int64, error)
}

// Publisher sends an event directly, without an outbox.
type Publisher interface {
	Publish(ctx context.Context, ev events.OrderCreated) error
}
