package testkit

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/db"
)

// MigratedDB returns a pool on a database of the test's own with fsys's
// migrations applied, every fix on, reached through via if it is not nil (a
// Proxy in front of 127.0.0.1:5432). cfg sizes the pool; what it leaves zero
// is one second of wait for a connection and of statement_timeout, and as
// many idle connections as open ones.
func MigratedDB(t testing.TB, fsys fs.FS, via *Proxy, cfg config.DB) *db.DB {
	t.Helper()
	url := Database(t)
	if err := db.Migrate(context.Background(), url, fsys, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if via != nil {
		url = strings.Replace(url, "127.0.0.1:5432", via.Addr, 1)
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = cfg.MaxOpen
	}
	if cfg.AcquireTimeout == 0 {
		cfg.AcquireTimeout = time.Second
	}
	if cfg.StatementTimeout == 0 {
		cfg.StatementTimeout = time.Second
	}
	d, err := db.Open(url, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
