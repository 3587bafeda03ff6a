package db

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Migrate applies the migrations in fsys (a service's embedded migrations/
// folder) up to the latest version.
//
// golang-migrate takes a Postgres advisory lock around the whole run, so two
// replicas starting together are safe: the second waits, then finds nothing
// left to do.
func Migrate(ctx context.Context, databaseURL string, fsys fs.FS, log *slog.Logger) error {
	src, err := iofs.New(fsys, ".")
	if err != nil {
		return fmt.Errorf("db: migrations source: %w", err)
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return errors.New("db: DATABASE_URL is malformed")
	}
	sqlDB := stdlib.OpenDB(*cfg)
	defer sqlDB.Close()
	driver, err := pgxmigrate.WithInstance(sqlDB, &pgxmigrate.Config{})
	if err != nil {
		return fmt.Errorf("db: migrations driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		return fmt.Errorf("db: migrate: %w", err)
	}
	defer m.Close()
	// A replica that finds another one migrating waits for it this long.
	m.LockTimeout = 2 * time.Minute

	// migrate has no context; stop it between migrations if ours ends.
	stop := context.AfterFunc(ctx, func() { m.GracefulStop <- true })
	defer stop()

	from, _, _ := m.Version()
	switch err := m.Up(); {
	case errors.Is(err, migrate.ErrNoChange):
		log.InfoContext(ctx, "migrations up to date", "version", from)
	case err != nil:
		return fmt.Errorf("db: migrate up: %w", err)
	default:
		to, _, _ := m.Version()
		log.InfoContext(ctx, "migrations applied", "from", from, "to", to)
	}
	return nil
}

// EnsureDatabase creates the database named in databaseURL if it does not
// exist, connecting to the server's "postgres" database to do it. It is for
// development and tests (`make dev`); deployments create databases up front.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return errors.New("db: DATABASE_URL is malformed")
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" {
		return nil
	}
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("db: connect to create %s: %w", name, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return nil // already there (23505: two creators raced on the catalog)
	}
	if err != nil {
		return fmt.Errorf("db: create database %s: %w", name, err)
	}
	return nil
}
