package products

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
)

// SoldConsumer is the durable consumer name under which order.created events
// are recorded as sold.
const SoldConsumer = "search-sold"

// How long cached reads are fresh, and how long the last good copy is kept
// for when Postgres is down. Sold counts in a cached page may lag by the page
// TTL; product detail is invalidated as soon as an order is applied.
const (
	ProductTTL = 30 * time.Second
	PageTTL    = 10 * time.Second
	KeepTTL    = 24 * time.Hour
)

// Service holds the search service's use cases.
type Service struct {
	store    Store
	cursors  Cursors
	reads    *resilience.Breaker[struct{}]
	products *resilience.Fallback[Product]
	pages    *resilience.Fallback[Page]
	cache    *cache.Store
	log      *slog.Logger
}

// NewService returns the use cases over store, caching in c.
func NewService(store Store, c *cache.Store, cursors Cursors, board *fixes.Board, obs *resilience.Observer, log *slog.Logger) *Service {
	return &Service{
		store:   store,
		cursors: cursors,
		// One breaker for all reads of the one database they share.
		reads:    resilience.NewBreaker[struct{}](resilience.BreakerSettings{Name: "postgres_reads"}, board, obs),
		products: resilience.NewFallback[Product](c, ProductTTL, KeepTTL, board, obs).WithPatience(resilience.ReadPatience),
		pages:    resilience.NewFallback[Page](c, PageTTL, KeepTTL, board, obs).WithPatience(resilience.ReadPatience),
		cache:    c,
		log:      log,
	}
}

// read runs a database read through the breaker.
func (s *Service) read(ctx context.Context, fn func(context.Context) error) error {
	_, err := s.reads.Do(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

func productKey(id int64) string { return "product:" + strconv.FormatInt(id, 10) }

// Product returns one product; stale is true when it is the last good copy
// served because Postgres could not be read.
func (s *Service) Product(ctx context.Context, id int64) (p Product, stale bool, err error) {
	return s.products.Get(ctx, productKey(id), func(ctx context.Context) (Product, error) {
		var p Product
		err := s.read(ctx, func(ctx context.Context) (err error) {
			p, err = s.store.Product(ctx, id)
			if errors.Is(err, ErrNotFound) {
				// The database answered: not an outage, and not to be
				// papered over with an old copy.
				return resilience.NotFound(err)
			}
			return err
		})
		return p, err
	})
}

// Search returns a page of results. A cursor that was not made for this
// query is ErrBadCursor.
func (s *Service) Search(ctx context.Context, q Query) (page Page, stale bool, err error) {
	var after *Cursor
	if q.Cursor != "" {
		if after, err = s.cursors.Decode(q.Cursor, q); err != nil {
			return Page{}, false, err
		}
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%s", q.key(), q.Limit, q.Cursor))
	key := "search:" + base64.RawURLEncoding.EncodeToString(h[:12])
	return s.pages.Get(ctx, key, func(ctx context.Context) (Page, error) { return s.load(ctx, q, after) })
}

func (s *Service) load(ctx context.Context, q Query, after *Cursor) (Page, error) {
	mode := ModeList
	switch {
	case after != nil:
		mode = after.Mode // a later page is matched the way the first one was
	case q.Text != "":
		mode = ModeText
	}
	var hits []Hit
	search := func(ctx context.Context) (err error) {
		hits, err = s.store.Search(ctx, mode, q, after, q.Limit+1)
		return err
	}
	if err := s.read(ctx, search); err != nil {
		return Page{}, err
	}
	if mode == ModeText && after == nil && len(hits) == 0 {
		// Nothing matches the words as typed: try them as a typo ("iphnoe").
		mode = ModeTrigram
		if err := s.read(ctx, search); err != nil {
			return Page{}, err
		}
	}
	page := Page{Items: make([]Product, 0, min(len(hits), q.Limit))}
	for i, h := range hits {
		if i == q.Limit {
			last := hits[i-1]
			page.NextCursor = s.cursors.Encode(Cursor{Mode: mode, Rank: last.Rank, ID: last.ID}, q)
			break
		}
		page.Items = append(page.Items, h.Product)
	}
	return page, nil
}

// ApplyOrderCreated adds an order's items to the sold counts, once per event,
// and drops the cached details of the products it touched.
func (s *Service) ApplyOrderCreated(ctx context.Context, ev events.OrderCreated) error {
	if ev.EventID == "" {
		return fmt.Errorf("%w: order.created without event_id", events.ErrPermanent)
	}
	applied, err := s.store.ApplySold(ctx, SoldConsumer, ev.EventID, ev.Items)
	if err != nil || !applied {
		return err
	}
	keys := make([]string, len(ev.Items))
	for i, it := range ev.Items {
		keys[i] = productKey(it.ProductID)
	}
	if err := s.cache.Invalidate(ctx, keys...); err != nil {
		s.log.WarnContext(ctx, "product cache invalidation failed; entries expire within their TTL", "error", err)
	}
	return nil
}
