package db_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/testkit"
	"github.com/stampede-shop/stampede/pkg/web"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var migrations = fstest.MapFS{
	"0001_items.up.sql":   {Data: []byte(`CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);`)},
	"0001_items.down.sql": {Data: []byte(`DROP TABLE items;`)},
	// pg_sleep makes the race window wide: without the advisory lock the
	// second replica would try to create the table while the first still is.
	"0002_slow.up.sql":   {Data: []byte(`SELECT pg_sleep(0.3); ALTER TABLE items ADD COLUMN price bigint NOT NULL DEFAULT 0;`)},
	"0002_slow.down.sql": {Data: []byte(`ALTER TABLE items DROP COLUMN price;`)},
}

func TestMigrateTwoReplicasAtOnce(t *testing.T) {
	t.Parallel()
	url := testkit.Database(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = db.Migrate(context.Background(), url, migrations, quiet) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	d := open(t, url, fixes.Resilient, 2)
	var version int
	var dirty bool
	err := d.Do(context.Background(), func(tx *gorm.DB) error {
		return tx.Raw("SELECT version, dirty FROM schema_migrations").Row().Scan(&version, &dirty)
	})
	if err != nil || version != 2 || dirty {
		t.Fatalf("schema version %d dirty=%v err=%v, want 2 clean", version, dirty, err)
	}
	// Applying again is a no-op.
	if err := db.Migrate(context.Background(), url, migrations, quiet); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, url string, set fixes.Set, maxOpen int) *db.DB {
	t.Helper()
	d, err := db.Open(url, config.DB{MaxOpen: maxOpen, MaxIdle: maxOpen, AcquireTimeout: 50 * time.Millisecond, StatementTimeout: time.Second}, fixes.NewBoard(set, quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// selectOne is a request's work: it needs a connection.
func selectOne(g *gorm.DB) error { return g.Exec("SELECT 1").Error }

// holdAll occupies every slot of the pool until the returned func is called.
func holdAll(t *testing.T, d *db.DB, n int) (release func()) {
	t.Helper()
	stop := make(chan struct{})
	held := make(chan struct{}, n)
	failed := make(chan error, n)
	for range n {
		go func() {
			err := d.Do(context.Background(), func(g *gorm.DB) error {
				// A connection of its own, held until stop.
				return g.Connection(func(*gorm.DB) error {
					held <- struct{}{}
					<-stop
					return nil
				})
			})
			if err != nil {
				failed <- err
			}
		}()
	}
	for range n {
		select {
		case <-held:
		case err := <-failed: // a slot never taken would leave the test waiting for ever
			close(stop)
			t.Fatalf("holding a connection: %v", err)
		}
	}
	return func() { close(stop) }
}

func TestPoolGuard(t *testing.T) {
	t.Parallel()
	url := testkit.Database(t)

	t.Run("fix on: a full pool answers PoolTimeout", func(t *testing.T) {
		d := open(t, url, fixes.Resilient, 2)
		release := holdAll(t, d, 2)
		defer release()
		// The caller's context would wait an hour; the guard does not.
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		err := d.Do(ctx, selectOne)
		var pt *db.PoolTimeout
		if !errors.As(err, &pt) || pt.Code() != "pool_timeout" || pt.RetryAfter() <= 0 {
			t.Fatalf("got %v, want *db.PoolTimeout", err)
		}
	})

	t.Run("fix off: a full pool waits as long as the caller does", func(t *testing.T) {
		d := open(t, url, fixes.Naive, 2)
		release := holdAll(t, d, 2)
		defer release()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := d.Do(ctx, selectOne)
		var pt *db.PoolTimeout
		if errors.As(err, &pt) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the caller's own deadline (no guard)", err)
		}
	})

	t.Run("flipped at run time", func(t *testing.T) {
		board := fixes.NewBoard(fixes.Resilient, quiet)
		d, err := db.Open(url, config.DB{MaxOpen: 1, MaxIdle: 1, AcquireTimeout: 20 * time.Millisecond, StatementTimeout: time.Second}, board)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		release := holdAll(t, d, 1)
		defer release()
		try := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			return d.Do(ctx, selectOne)
		}
		var pt *db.PoolTimeout
		if err := try(); !errors.As(err, &pt) {
			t.Fatalf("on: %v, want PoolTimeout", err)
		}
		board.Replace(fixes.Naive, "test")
		if err := try(); errors.As(err, &pt) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("off: %v, want the caller's deadline", err)
		}
	})

	t.Run("UntilDeadline: a full pool is waited for until the deadline", func(t *testing.T) {
		d := open(t, url, fixes.Resilient, 1) // acquire timeout 50 ms
		release := holdAll(t, d, 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Do(ctx, selectOne); !errors.As(err, new(*db.PoolTimeout)) {
			t.Fatalf("without: %v, want PoolTimeout", err)
		}
		time.AfterFunc(300*time.Millisecond, release) // the slot frees long after the acquire timeout
		if err := d.Do(db.UntilDeadline(ctx), selectOne); err != nil {
			t.Fatalf("until the deadline: %v, want the slot once freed", err)
		}
		hold := holdAll(t, d, 1)
		defer hold()
		// No deadline: the acquire timeout still holds.
		if err := d.Do(db.UntilDeadline(context.Background()), selectOne); !errors.As(err, new(*db.PoolTimeout)) {
			t.Fatalf("no deadline: %v, want PoolTimeout", err)
		}
	})

	t.Run("a freed slot is reused", func(t *testing.T) {
		d := open(t, url, fixes.Resilient, 1)
		for range 5 {
			if err := d.Do(context.Background(), func(tx *gorm.DB) error { return tx.Exec("SELECT 1").Error }); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestStatementTimeout(t *testing.T) {
	t.Parallel()
	url := testkit.Database(t)
	for _, tt := range []struct {
		set     fixes.Set
		timeout bool
	}{{fixes.Resilient, true}, {fixes.Naive, false}} {
		d := open(t, url, tt.set, 1)
		var setting string
		err := d.Do(context.Background(), func(tx *gorm.DB) error {
			return tx.Raw("SHOW statement_timeout").Row().Scan(&setting)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := setting == "1s"; got != tt.timeout {
			t.Errorf("fixes=%s: statement_timeout=%s", tt.set, setting)
		}
	}
}

func TestUnreachableDatabaseIsAnOutageNotABug(t *testing.T) {
	t.Parallel()
	url := testkit.Database(t)
	proxy := testkit.NewProxy(t, "127.0.0.1:5432", false)
	d := open(t, strings.Replace(url, "127.0.0.1:5432", proxy.Addr, 1), fixes.Resilient, 2)
	err := d.Do(context.Background(), func(tx *gorm.DB) error { return tx.Exec("SELECT 1").Error })
	var un *db.UnavailableError
	var ol web.Overload
	if !errors.As(err, &un) || !errors.As(err, &ol) || ol.Code() != "database_unavailable" {
		t.Fatalf("got %v, want an UnavailableError (503)", err)
	}
	// A genuine SQL error stays what it is.
	proxy.SetUp(true)
	err = d.Do(context.Background(), func(tx *gorm.DB) error { return tx.Exec("SELEKT 1").Error })
	if err == nil || errors.As(err, &un) {
		t.Fatalf("syntax error: %v, want it unwrapped", err)
	}
}

// A connection lost inside a transaction is an outage too, even where the
// statement's own error went unseen: the COMMIT then finds pgx's "conn
// closed". In the db-outage replay that came back as a 500.
func TestConnectionLostBeforeTheCommitIsAnOutage(t *testing.T) {
	t.Parallel()
	url := testkit.Database(t)
	proxy := testkit.NewProxy(t, "127.0.0.1:5432", true)
	d := open(t, strings.Replace(url, "127.0.0.1:5432", proxy.Addr, 1), fixes.Resilient, 2)
	err := d.Tx(context.Background(), func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT 1").Error; err != nil {
			return err
		}
		proxy.SetUp(false)
		_ = tx.Exec("SELECT 1") // its error unseen (handled, or rolled back to a savepoint)
		return nil
	})
	var un *db.UnavailableError
	if !errors.As(err, &un) {
		t.Fatalf("got %T %v, want an UnavailableError (503)", err, err)
	}
}

func TestStatementTimeoutIsAnOverload(t *testing.T) {
	t.Parallel()
	d := open(t, testkit.Database(t), fixes.Resilient, 1) // statement_timeout 1s
	err := d.Do(context.Background(), func(tx *gorm.DB) error { return tx.Exec("SELECT pg_sleep(2)").Error })
	var te *db.TimeoutError
	var ol web.Overload
	if !errors.As(err, &te) || !errors.As(err, &ol) || ol.Code() != "database_timeout" {
		t.Fatalf("got %v, want a TimeoutError (503)", err)
	}
}

func TestDeadlineMidTransactionIsATimeout(t *testing.T) {
	t.Parallel()
	d := open(t, testkit.Database(t), fixes.Naive, 1) // no statement_timeout: only the context
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := d.Tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT 1").Error; err != nil {
			return err
		}
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // database/sql notices and rolls back
		return nil                        // so the COMMIT finds the transaction gone
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline as the cause", err)
	}
}

func TestEnsureDatabase(t *testing.T) {
	t.Parallel()
	url := testkit.Database(t)
	// Exists already: no error, twice.
	for range 2 {
		if err := db.EnsureDatabase(context.Background(), url); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRefusesMalformedURLWithoutEchoingIt(t *testing.T) {
	_, err := db.Open("postgres://u:pa ss@%zz/db", config.DB{MaxOpen: 1}, nil)
	if err == nil || err.Error() != "db: DATABASE_URL is malformed" {
		t.Fatalf("got %v", err)
	}
}

// With pool_guard the database's time, the wait at the gate and the use of a
// connection, is the gate's to bound, and the shedder at the door does not
// count it: a slow query does not shrink the door's limit. Without the gate
// nothing bounds that time but the door, which counts it as before.
func TestTheDoorLeavesTheDatabasesTimeToTheGate(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	url := testkit.Database(t)
	for _, tt := range []struct {
		set    fixes.Set
		shrink bool
	}{{fixes.Resilient, false}, {fixes.Naive, true}} {
		d := open(t, url, tt.set, 10)
		sh := resilience.NewShedder(resilience.ShedSettings{Target: 20 * time.Millisecond, InitialLimit: 10}, nil)
		r := gin.New()
		// The door is on in both: only the gate differs.
		r.Use(resilience.Shed(sh, resilience.InternalIsCritical("/internal/"), fixes.NewBoard(fixes.Resilient, quiet), quiet))
		r.GET("/", func(c *gin.Context) {
			err := d.Do(c.Request.Context(), func(g *gorm.DB) error { return g.Exec("SELECT pg_sleep(0.05)").Error })
			if err != nil {
				t.Error(err)
			}
			c.Status(http.StatusNoContent)
		})
		var wg sync.WaitGroup
		for range 5 { // rounds of ten at once: the limit is in use
			for range 10 {
				wg.Go(func() { r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil)) })
			}
			wg.Wait()
		}
		got := sh.Limit()
		if tt.shrink && got >= 10 {
			t.Errorf("%s: limit %d, want it shrunk below 10 (nothing but the door bounds the query)", tt.set, got)
		}
		if !tt.shrink && got < 10 {
			t.Errorf("%s: limit %d, want it kept: the query's time is the gate's", tt.set, got)
		}
	}
}

// Pgx hands out pgx's own connection under Do's rules: the pool's gate, the
// statement_timeout and the errors' names; and gives it back.
func TestPgxIsDoWithPgxsConnection(t *testing.T) {
	t.Parallel()
	url := testkit.Database(t)
	d := open(t, url, fixes.Resilient, 1)
	ctx := context.Background()

	var got []int
	err := d.Pgx(ctx, func(conn *pgx.Conn) error {
		b := &pgx.Batch{}
		for i := range 3 {
			b.Queue("SELECT $1::int", i).QueryRow(func(row pgx.Row) error {
				var n int
				err := row.Scan(&n)
				got = append(got, n)
				return err
			})
		}
		return conn.SendBatch(ctx, b).Close()
	})
	if err != nil || len(got) != 3 || got[2] != 2 {
		t.Fatalf("a batch: %v %v, want [0 1 2]", got, err)
	}

	err = d.Pgx(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(2)")
		return err
	})
	var te *db.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("past statement_timeout: %T %v, want a TimeoutError (503)", err, err)
	}

	// A connection left inside a transaction is closed, not kept idle in
	// the pool with what the transaction holds (here a lock).
	err = d.Pgx(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "BEGIN; SELECT pg_advisory_xact_lock(42)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	other := open(t, url, fixes.Resilient, 1)
	free := false
	for try := 0; try < 20 && !free; try++ { // the server lets go as the connection closes
		if try > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if err := other.Do(ctx, func(g *gorm.DB) error {
			return g.Raw("SELECT pg_try_advisory_xact_lock(42)").Row().Scan(&free)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !free {
		t.Fatal("a transaction left open by Pgx still holds its lock: its connection sits in the pool")
	}

	release := holdAll(t, d, 1) // the one connection went back each time: it can be held
	defer release()
	var pt *db.PoolTimeout
	if err := d.Pgx(ctx, func(*pgx.Conn) error { return nil }); !errors.As(err, &pt) {
		t.Fatalf("a full pool: %v, want *db.PoolTimeout", err)
	}
}
