package orders

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
)

// Service holds the order service's use cases.
type Service struct {
	store   Store
	gate    Gate
	users   Users
	catalog Catalog
	pub     Publisher
	board   *fixes.Board
	log     *slog.Logger
	now     func() time.Time
	reads   *resilience.Breaker[owned]
	cached  *resilience.Fallback[owned]
}

// owned is an order with its owner, as cached: ownership is checked on every
// read, from the cache or a stale copy alike.
type owned struct {
	Order
	Owner int64 `json:"owner"`
}

// NewService wires the use cases.
func NewService(store Store, gate Gate, users Users, catalog Catalog, pub Publisher, c *cache.Store,
	board *fixes.Board, obs *resilience.Observer, log *slog.Logger) *Service {
	return &Service{store: store, gate: gate, users: users, catalog: catalog, pub: pub, board: board, log: log, now: time.Now,
		reads: resilience.NewBreaker[owned](resilience.BreakerSettings{Name: "postgres_reads"}, board, obs),
		// Orders do not change once placed: a cached copy is never wrong,
		// and one in hand is not kept waiting for a slow Postgres.
		cached: resilience.NewFallback[owned](c, 10*time.Minute, 24*time.Hour, board, obs).WithPatience(resilience.ReadPatience),
	}
}

// Render turns a placed order into the reply stored with its key.
type Render func(o *Order) Reply

// Place places an order once per (user, idempotency key): the first request
// does the work, a repeat gets the first one's reply (replayed = true).
func (s *Service) Place(ctx context.Context, userID int64, key string, req Request, render Render) (reply Reply, replayed bool, err error) {
	lines, hash := req.Lines(), req.Hash()
	var counted []int64
	if s.board.On(fixes.HotRow) {
		// fix: hot_row — during a flash sale nearly every request is for
		// stock that is gone. The gate knows it from Redis; one indexed read
		// (no write, no commit, no lock) tells whether this key already has
		// an answer to replay. Nothing else touches Postgres.
		if out, gerr := s.gate.SoldOut(ctx, lines); gerr == nil && out {
			claim, err := s.store.PeekKey(ctx, userID, key, hash)
			switch {
			case err != nil:
				return Reply{}, false, err
			case claim.Replay != nil:
				return *claim.Replay, true, nil
			}
			return Reply{}, false, ErrSoldOut
		}
		// fix: hot_row — the claim reads the lines' stock in its round
		// trip, for the gate to build a counter it lacks without another.
		counted = productIDs(lines)
	}
	claim, err := s.store.ClaimKey(ctx, userID, key, hash, counted)
	if err != nil {
		return Reply{}, false, err
	}
	if claim.Replay != nil {
		return *claim.Replay, true, nil
	}
	// Postgres keeps microseconds: the reply, the cached copy and a read from
	// Postgres all show the same time.
	o := &Order{ID: uuid.NewString(), UserID: userID, Status: StatusCreated, Items: lines, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}

	var ev *events.OrderCreated
	held := heldKey{key: key, claim: claim.ID}
	if s.board.On(fixes.HotRow) {
		ev, err = s.placeGuarded(ctx, o, held, claim.Stock, render)
	} else {
		ev, err = s.placeNaive(ctx, o, held, render)
	}
	if err != nil {
		// The key is released so the client can retry: nothing was written.
		// Even when the request's own time is up, but briefly: if it cannot
		// be done in time, the claim lapses after its Lease anyway.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ReleaseTimeout)
		defer cancel()
		if rerr := s.store.ReleaseKey(rctx, userID, key, claim.ID); rerr != nil {
			s.log.WarnContext(ctx, "idempotency key not released", "error", rerr)
		}
		return Reply{}, false, err
	}
	if ev != nil {
		// Without the outbox, as the incident had it: published after the
		// commit. If the process dies here, the order exists and its event
		// never will; points and sold counts silently go wrong.
		if err := s.pub.Publish(ctx, *ev); err != nil {
			s.log.ErrorContext(ctx, "order.created lost: publish after commit failed", "order_id", o.ID, "error", err)
		}
	}
	// An order never changes: its copy is cached as it is placed, so its
	// owner's first read needs no database, and finds it during an outage.
	s.cached.Keep(ctx, orderKey(o.ID), owned{Order: *o, Owner: userID})
	return render(o), false, nil
}

func orderKey(id string) string { return "order:" + id }

// placeNaive is the flash-sale path as it is usually first written, and as it
// took the shop down: one transaction locks the product rows, then calls the
// user and search services while holding the locks and the connection, then
// checks the stock in Go. Under a spike every request queues on the hot row's
// lock, every connection of the pool waits with it, and nothing else the
// service does can get a connection.
func (s *Service) placeNaive(ctx context.Context, o *Order, key heldKey, reply Render) (*events.OrderCreated, error) {
	var direct *events.OrderCreated
	err := s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		stock, err := tx.LockStock(ctx, productIDs(o.Items)) // the locks are held from here to COMMIT
		if err != nil {
			return err
		}
		if len(stock) != len(o.Items) {
			return ErrUnknownProduct
		}
		if err := s.lookup(ctx, o); err != nil { // two remote calls, under the locks
			return err
		}
		for _, l := range o.Items {
			if stock[l.ProductID] < int64(l.Quantity) {
				return ErrSoldOut
			}
		}
		for _, l := range o.Items {
			if err := tx.Decrement(ctx, l.ProductID, l.Quantity); err != nil {
				return err
			}
		}
		var p Placement
		p, direct = s.placement(o, key, reply)
		return write(ctx, tx, p)
	})
	return direct, err
}

// placeGuarded is the fixed path. Everything slow happens before the
// transaction; hot stock is gated in Redis so that sold-out requests never
// reach Postgres; the transaction is a handful of short statements, sent
// together, whose conditional UPDATE is what really decides, so nothing can
// oversell even if the gate is wrong or gone.
func (s *Service) placeGuarded(ctx context.Context, o *Order, key heldKey, stock map[int64]int64, reply Render) (*events.OrderCreated, error) {
	// fix: hot_row — no remote call while a lock or a connection is held.
	if err := s.lookup(ctx, o); err != nil {
		return nil, err
	}
	// fix: hot_row — the Redis gate refuses what is sold out without Postgres.
	gated, err := s.gate.Take(ctx, o.Items, stock)
	switch {
	case err != nil:
		// The gate is an optimisation; without it, Postgres still decides.
		s.log.WarnContext(ctx, "stock gate unavailable; Postgres decides alone", "error", err)
	case !gated:
		return nil, ErrSoldOut
	}
	p, direct := s.placement(o, key, reply)
	// fix: hot_row — the transaction goes whole: its statements travel
	// together, not one round trip each, and the hot row's conditional
	// UPDATE is the last of them, so the row is locked for one statement and
	// the commit. Only what is there is taken.
	err = s.store.Place(ctx, p)
	if err != nil && gated {
		if gerr := s.gate.Give(context.WithoutCancel(ctx), o.Items); gerr != nil {
			s.log.WarnContext(ctx, "stock gate not refunded", "error", gerr)
		}
	}
	return direct, err
}

// heldKey is the idempotency key a request placing an order holds, and the
// name of its claim on it.
type heldKey struct{ key, claim string }

// placement is what placing o writes, and, without the outbox, the event to
// publish after the commit.
func (s *Service) placement(o *Order, key heldKey, reply Render) (p Placement, direct *events.OrderCreated) {
	p = Placement{Order: o, Key: key.key, Claim: key.claim, Reply: reply(o)}
	ev := o.event()
	if !s.board.On(fixes.Outbox) {
		return p, &ev
	}
	// fix: outbox — the event commits with the order, or neither does.
	p.Event = &ev
	return p, nil
}

// write is Place one statement at a time, in the caller's transaction.
func write(ctx context.Context, tx Tx, p Placement) error {
	if err := tx.InsertOrder(ctx, p.Order); err != nil {
		return err
	}
	if err := tx.SaveReply(ctx, p.Order.UserID, p.Key, p.Claim, p.Reply); err != nil {
		return err
	}
	if p.Event == nil {
		return nil
	}
	return tx.AppendOutbox(ctx, *p.Event)
}

// lookup checks the buyer and prices the lines.
func (s *Service) lookup(ctx context.Context, o *Order) error {
	if err := s.users.Exists(ctx, o.UserID); err != nil {
		return err
	}
	o.TotalCents = 0
	for i := range o.Items {
		price, err := s.catalog.Price(ctx, o.Items[i].ProductID)
		if err != nil {
			return err
		}
		o.Items[i].PriceCents = price
		o.TotalCents += price * int64(o.Items[i].Quantity)
	}
	return nil
}

// Get returns one of the caller's orders; stale is true when it is the last
// good copy, served because Postgres could not be read. Another user's order
// is ErrNotFound: its existence is none of the caller's business.
func (s *Service) Get(ctx context.Context, userID int64, id string) (o Order, stale bool, err error) {
	// Any spelling uuid.Parse reads is this order's id; Postgres reads some
	// of them ("urn:uuid:…" not), so the id goes on in one.
	u, err := uuid.Parse(id)
	if err != nil {
		return Order{}, false, ErrNotFound
	}
	id = u.String()
	got, stale, err := s.cached.Get(ctx, orderKey(id), func(ctx context.Context) (owned, error) {
		return s.reads.Do(ctx, func(ctx context.Context) (owned, error) {
			o, err := s.store.Order(ctx, id)
			if errors.Is(err, ErrNotFound) {
				return owned{}, resilience.NotFound(err) // an answer, not an outage
			}
			return owned{Order: o, Owner: o.UserID}, err
		})
	})
	if err != nil {
		return Order{}, false, err
	}
	if got.Owner != userID {
		return Order{}, false, ErrNotFound
	}
	got.UserID = got.Owner
	return got.Order, stale, nil
}

// List returns a page of the caller's orders, newest first.
func (s *Service) List(ctx context.Context, userID int64, before *ListCursor, limit int) ([]Order, error) {
	return s.store.List(ctx, userID, before, limit)
}

func (o *Order) event() events.OrderCreated {
	items := make([]events.Item, len(o.Items))
	for i, it := range o.Items {
		items[i] = events.Item{ProductID: it.ProductID, Quantity: it.Quantity, PriceCents: it.PriceCents}
	}
	return events.OrderCreated{EventID: uuid.NewString(), OrderID: o.ID, UserID: o.UserID, Items: items,
		TotalCents: o.TotalCents, OccurredAt: o.CreatedAt}
}

func productIDs(lines []Item) []int64 {
	ids := make([]int64, len(lines))
	for i, l := range lines {
		ids[i] = l.ProductID
	}
	return ids
}

// IsClientError reports whether err is the client's problem (4xx), for
// breakers and logs.
func IsClientError(err error) bool {
	for _, e := range []error{ErrSoldOut, ErrNotFound, ErrUnknownProduct, ErrUnknownUser, ErrKeyReused, ErrInProgress} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
