// Package postgres is the search service's products.Store on Postgres:
// full-text search on a generated tsvector with a GIN index, trigram
// similarity for typos, keyset pagination.
package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/services/search/products"
)

// Store implements products.Store.
type Store struct{ db *db.DB }

// NewStore returns a Store over d.
func NewStore(d *db.DB) *Store { return &Store{db: d} }

var _ products.Store = (*Store)(nil)

const columns = `id, sku, name, description, category, price_cents, currency, sold, in_stock`

// trigramThreshold is the word similarity a name needs to match a typo:
// "iphnoe" against "iPhone 17 Pro 256GB" scores 0.43.
const trigramThreshold = "0.4"

// searchSQL builds the query of one mode. The rank expression is the keyset's
// first column, so the cursor condition repeats it.
func searchSQL(mode products.Mode, q products.Query, after *products.Cursor, limit int) (string, map[string]any) {
	var rank, from string
	var where []string
	switch mode {
	case products.ModeText:
		// An exact name match is what someone typing a product's name wants
		// first, whatever ts_rank thinks of the words' frequencies.
		rank = `(ts_rank(search, query) + CASE WHEN lower(name) = lower(@text) THEN 1 ELSE 0 END)::real`
		from = `products, websearch_to_tsquery('english', @text) AS query`
		where = append(where, `search @@ query`)
	case products.ModeTrigram:
		rank = `word_similarity(@text, name)::real`
		from = `products`
		where = append(where, `@text <% name`) // served by the trigram GIN index
	default:
		rank = `0::real`
		from = `products`
	}
	named := map[string]any{"text": q.Text}
	if q.Category != "" {
		where = append(where, `category = @category`)
		named["category"] = q.Category
	}
	if q.MinPrice != nil {
		where = append(where, `price_cents >= @min_price`)
		named["min_price"] = *q.MinPrice
	}
	if q.MaxPrice != nil {
		where = append(where, `price_cents <= @max_price`)
		named["max_price"] = *q.MaxPrice
	}
	if after != nil {
		where = append(where, fmt.Sprintf(`(%[1]s < @after_rank OR (%[1]s = @after_rank AND id > @after_id))`, rank))
		named["after_rank"], named["after_id"] = after.Rank, after.ID
	}
	sql := `SELECT ` + columns + `, ` + rank + ` AS rank FROM ` + from
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, ` AND `)
	}
	sql += ` ORDER BY rank DESC, id LIMIT @limit`
	named["limit"] = limit
	return sql, named
}

type hitRow struct {
	products.Product
	Rank float32
}

// Search runs one page of a query, in one round trip. A typo's search sets
// the threshold of the trigram operator (<%) first, local to the implicit
// transaction Postgres runs a pgx batch in: sent with the search, undone at
// its end. (Set in a transaction of its own, BEGIN, SET LOCAL, the search,
// COMMIT, it took four round trips, each holding the connection.)
func (s *Store) Search(ctx context.Context, mode products.Mode, q products.Query, after *products.Cursor, limit int) ([]products.Hit, error) {
	sql, named := searchSQL(mode, q, after, limit)
	var rows []hitRow
	b := &pgx.Batch{}
	if mode == products.ModeTrigram {
		b.Queue(`SET LOCAL pg_trgm.word_similarity_threshold = ` + trigramThreshold)
	}
	b.Queue(sql, pgx.NamedArgs(named)).Query(func(r pgx.Rows) (err error) {
		rows, err = pgx.CollectRows(r, pgx.RowToStructByName[hitRow])
		return err
	})
	err := s.db.Pgx(ctx, func(conn *pgx.Conn) error { return conn.SendBatch(ctx, b).Close() })
	if err != nil {
		return nil, fmt.Errorf("postgres: search: %w", err)
	}
	hits := make([]products.Hit, len(rows))
	for i, r := range rows {
		hits[i] = products.Hit{Product: r.Product, Rank: r.Rank}
	}
	return hits, nil
}

// Product reads one product.
func (s *Store) Product(ctx context.Context, id int64) (products.Product, error) {
	var p products.Product
	var found bool
	err := s.db.Do(ctx, func(tx *gorm.DB) error {
		res := tx.Raw(`SELECT `+columns+` FROM products WHERE id = ?`, id).Scan(&p)
		found = res.RowsAffected > 0
		return res.Error
	})
	if err != nil {
		return p, fmt.Errorf("postgres: product %d: %w", id, err)
	}
	if !found {
		return p, products.ErrNotFound
	}
	return p, nil
}

// applySoldSQL records the event and adds its items to sold, taking them off
// in_stock, in one statement, which Postgres runs atomically: the items only
// if the event was new. A redelivery, even one running beside the first
// delivery, waits on the event's unique key and then changes nothing. Lines
// of the same product are summed first: an UPDATE changes a row once.
const applySoldSQL = `WITH handled AS (
		INSERT INTO processed_events (consumer, event_id) VALUES (@consumer, @event_id)
		ON CONFLICT DO NOTHING RETURNING 1
	), lines AS (
		SELECT id, sum(quantity) AS quantity FROM unnest(@ids::bigint[], @quantities::bigint[]) AS l(id, quantity) GROUP BY id
	), sold AS (
		UPDATE products p SET sold = p.sold + l.quantity, in_stock = GREATEST(p.in_stock - l.quantity, 0), updated_at = now()
		FROM lines l WHERE p.id = l.id AND EXISTS (SELECT FROM handled)
	)
	SELECT EXISTS (SELECT FROM handled)`

// ApplySold records an event's items as sold, once: one round trip, where a
// transaction took three and one more per line.
func (s *Store) ApplySold(ctx context.Context, consumer, eventID string, items []events.Item) (applied bool, err error) {
	ids, quantities := make([]int64, len(items)), make([]int64, len(items))
	for i, it := range items {
		ids[i], quantities[i] = it.ProductID, int64(it.Quantity)
	}
	args := pgx.NamedArgs{"consumer": consumer, "event_id": eventID, "ids": ids, "quantities": quantities}
	err = s.db.Pgx(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, applySoldSQL, args).Scan(&applied)
	})
	if err != nil {
		return false, fmt.Errorf("postgres: apply sold: %w", err)
	}
	return applied, nil
}

// productRow is the table's shape for the seed.
type productRow struct {
	ID          int64
	SKU         string
	Name        string
	Description string
	Category    string
	PriceCents  int64
	Currency    string
	InStock     int64
	UpdatedAt   time.Time
}

func (productRow) TableName() string { return "products" }

// Seed inserts the first n products of the shared catalog; products already
// there are left as they are, so seeding twice is harmless.
func (s *Store) Seed(ctx context.Context, n int) error {
	cat := catalog.Generate(n)
	rows := make([]productRow, len(cat))
	now := time.Now()
	for i, p := range cat {
		rows[i] = productRow{ID: p.ID, SKU: p.SKU, Name: p.Name, Description: p.Description, Category: p.Category,
			PriceCents: p.PriceCents, Currency: p.Currency, InStock: p.Stock, UpdatedAt: now}
	}
	err := s.db.Do(ctx, func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(rows, 1000).Error; err != nil {
			return err
		}
		// After a bulk insert the GIN indexes keep the new entries in their
		// pending list (fastupdate) until the next vacuum; the planner prices
		// that in and scans the table instead. VACUUM flushes the list and
		// ANALYZE gives the planner fresh statistics.
		return tx.Exec(`VACUUM ANALYZE products`).Error
	})
	if err != nil {
		return fmt.Errorf("postgres: seed: %w", err)
	}
	return nil
}
