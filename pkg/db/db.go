// Package db opens Postgres through GORM on the pgx driver, with the pool
// sized explicitly and the wait for a connection bounded (fix: pool_guard),
// and applies each service's embedded migrations at start.
package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
)

// DB is a GORM handle plus the gate that bounds the wait for a connection.
type DB struct {
	gorm  *gorm.DB
	sql   *sql.DB
	gate  chan struct{}
	wait  time.Duration
	board *fixes.Board
}

// Open configures the pool; it does not connect (Ping does), so a service can
// start serving its probes while Postgres is still coming up.
func Open(url string, cfg config.DB, board *fixes.Board) (*DB, error) {
	pgxCfg, err := pgx.ParseConfig(url)
	if err != nil {
		// Never echo the URL or pgx's message about it: it holds a password.
		return nil, errors.New("db: DATABASE_URL is malformed")
	}
	if board.On(fixes.Timeouts) {
		// fix: timeouts — the server itself stops a statement that runs too
		// long, even one whose client has vanished. Read once, at connect.
		pgxCfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
		pgxCfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
		pgxCfg.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt((5 * cfg.StatementTimeout).Milliseconds(), 10)
	}
	// Trace at the driver: every statement GORM sends passes through pgx.
	pgxCfg.Tracer = otelpgx.NewTracer()
	sqlDB := stdlib.OpenDB(*pgxCfg)
	sqlDB.SetMaxOpenConns(cfg.MaxOpen)
	sqlDB.SetMaxIdleConns(cfg.MaxIdle)
	sqlDB.SetConnMaxLifetime(30 * time.Minute)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)

	g, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{
		Logger:                 logger.Discard, // errors are returned and logged once, at the edge
		SkipDefaultTransaction: true,           // one statement needs no transaction of its own
		DisableAutomaticPing:   true,
		TranslateError:         true, // unique violations become gorm.ErrDuplicatedKey
	})
	if err != nil {
		return nil, fmt.Errorf("db: gorm: %w", err)
	}
	return &DB{gorm: g, sql: sqlDB, gate: make(chan struct{}, cfg.MaxOpen), wait: cfg.AcquireTimeout, board: board}, nil
}

// SQL returns the database/sql pool, for its statistics.
func (d *DB) SQL() *sql.DB { return d.sql }

// Ping checks that a connection can be had and used.
func (d *DB) Ping(ctx context.Context) error { return d.sql.PingContext(ctx) }

// Close closes the pool.
func (d *DB) Close() error { return d.sql.Close() }

// PoolTimeout is the error of a request that could not get a connection in
// time. It is an overload, not a failure: the client gets 503 + Retry-After.
type PoolTimeout struct{ Waited time.Duration }

func (e *PoolTimeout) Error() string {
	return "the database is busy; no connection within " + e.Waited.String()
}
func (e *PoolTimeout) Code() string              { return "pool_timeout" }
func (e *PoolTimeout) RetryAfter() time.Duration { return time.Second }

// Do runs fn with a GORM session bound to ctx, holding one slot of the pool.
//
// database/sql has no "wait at most this long for a connection": a request
// waits for as long as its context lives, and with no deadline that is for
// ever. That is how the incident's requests piled up behind one row lock. The
// gate is a semaphore the size of the pool in front of it, so a request either
// gets a slot within the acquire timeout or fails fast.
func (d *DB) Do(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return d.run(ctx, func() error { return fn(d.gorm.WithContext(ctx)) })
}

// Pgx is Do with the connection as pgx's own rather than GORM's, for what
// database/sql cannot express: above all a pgx.Batch, several statements sent
// in one round trip. The gate, the timeouts and the errors are Do's. A
// connection fn leaves inside a transaction is closed, not handed back to the
// pool: the transaction's locks would stay held, and the next caller would
// run in it.
func (d *DB) Pgx(ctx context.Context, fn func(conn *pgx.Conn) error) error {
	return d.run(ctx, func() error {
		conn, err := d.sql.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Raw(func(driverConn any) error {
			c := driverConn.(*stdlib.Conn).Conn()
			err := fn(c)
			if !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				defer cancel()
				_ = c.Close(cctx) // database/sql drops it on its next use
			}
			return err
		})
	})
}

// run runs fn holding one slot of the pool, and names its error.
func (d *DB) run(ctx context.Context, fn func() error) error {
	release, err := d.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := fn(); err != nil {
		var pgErr *pgconn.PgError
		switch {
		case errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil:
			// The deadline expired mid-transaction and database/sql rolled it
			// back: the cause is the deadline (503), not the statement after it.
			return fmt.Errorf("db: transaction abandoned: %w", ctx.Err())
		case connectionLost(err):
			return &UnavailableError{Err: err}
		case errors.As(err, &pgErr) && (pgErr.Code == "57014" || pgErr.Code == "55P03"):
			// statement_timeout or lock_timeout (fix: timeouts) cut it off.
			return &TimeoutError{Err: err}
		}
		return err
	}
	return nil
}

// UnavailableError means the database could not be reached: an outage, not a
// bug, so the client gets 503 + Retry-After rather than a 500, and breakers
// count it as a failure.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string             { return "the database is unavailable" }
func (e *UnavailableError) Unwrap() error             { return e.Err }
func (e *UnavailableError) Code() string              { return "database_unavailable" }
func (e *UnavailableError) RetryAfter() time.Duration { return time.Second }

// TimeoutError is a statement Postgres cancelled because it ran or waited for
// a lock too long: the database is overloaded, so 503 + Retry-After.
type TimeoutError struct{ Err error }

func (e *TimeoutError) Error() string             { return "the database took too long" }
func (e *TimeoutError) Unwrap() error             { return e.Err }
func (e *TimeoutError) Code() string              { return "database_timeout" }
func (e *TimeoutError) RetryAfter() time.Duration { return time.Second }

// connectionLost says whether err is the connection's, not the statement's.
// pgx's "conn closed" is one too: a connection broken by an earlier failure
// in the same transaction, used again (by the COMMIT, say) — nothing reached
// the server, which is what SafeToRetry means.
func connectionLost(err error) bool {
	var connect *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connect) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// Tx is Do inside a transaction.
func (d *DB) Tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return d.Do(ctx, func(g *gorm.DB) error { return g.Transaction(fn) })
}

type untilDeadlineKey struct{}

// UntilDeadline lets the work of ctx wait at the gate for a connection until
// ctx's deadline, not only the acquire timeout: for the few calls that must
// get through more than they must be quick, such as undoing what a failed
// request left behind. Without a deadline on ctx it changes nothing: the gate
// never waits without a bound.
func UntilDeadline(ctx context.Context) context.Context {
	return context.WithValue(ctx, untilDeadlineKey{}, true)
}

func (d *DB) acquire(ctx context.Context) (release func(), err error) {
	if !d.board.On(fixes.PoolGuard) {
		// Without the fix, as the incident had it: no gate. Requests queue
		// inside database/sql for as long as their context lives — and so
		// does the health check's ping, behind all of them.
		return func() {}, nil
	}
	// From here the time is the database's, and the gate bounds it: how many
	// wait for it and how long. The shedder at the door does not count it
	// (resilience.Outside): a full pool refuses its own excess, and the door
	// goes on admitting what needs no connection.
	back := resilience.Outside(ctx)
	release = func() { <-d.gate; back() }
	select {
	case d.gate <- struct{}{}:
		return release, nil
	default:
	}
	// fix: pool_guard — wait a bounded time for a connection, then fail fast.
	wait := d.wait
	if ctx.Value(untilDeadlineKey{}) != nil {
		if deadline, ok := ctx.Deadline(); ok {
			wait = max(wait, time.Until(deadline))
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case d.gate <- struct{}{}:
		return release, nil
	case <-t.C:
		back()
		return nil, &PoolTimeout{Waited: wait}
	case <-ctx.Done():
		back()
		return nil, ctx.Err()
	}
}
