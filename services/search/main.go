// Command search is Stampede's search service: the product catalog, full-text
// search with typo tolerance, and the sold counts from order events.
//
//	search          serve
//	search seed [N] create the schema and insert the first N catalog products (default 10000)
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/platform"
	"github.com/stampede-shop/stampede/services/search/migrations"
	"github.com/stampede-shop/stampede/services/search/nats"
	"github.com/stampede-shop/stampede/services/search/postgres"
	"github.com/stampede-shop/stampede/services/search/products"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "search:", err)
		if config.IsError(err) {
			os.Exit(config.ExitCode)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	p, err := platform.Open(ctx, cfg.Common, stdout, getenv)
	if err != nil {
		return err
	}
	defer p.Close()
	store := postgres.NewStore(p.DB)

	if len(args) > 1 && args[1] == "seed" {
		return seed(ctx, p, store, args[2:])
	}

	svc := products.NewService(store, p.Cache, products.NewCursors(cfg.CursorSecret.Reveal()), p.Board, p.Observer, p.Log)
	addRoutes(p.Server.API(), p, cfg, svc)

	return p.Server.Run(ctx, func(ctx context.Context) error {
		if err := p.Prepare(ctx, migrations.FS); err != nil {
			return err
		}
		stopSold, err := nats.ConsumeSold(ctx, p.JS, events.Orders(cfg.EventsNamespace), svc, p.Log)
		if err != nil {
			return err
		}
		p.Server.OnShutdown(func(context.Context) error { stopSold(); return nil })
		return nil
	})
}

// seed migrates and inserts the catalog, then exits.
func seed(ctx context.Context, p *platform.Platform, store *postgres.Store, args []string) error {
	n := catalog.DefaultSize
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 {
			return fmt.Errorf("seed: the count must be a positive integer, got %q", args[0])
		}
		n = v
	}
	if err := p.Prepare(ctx, migrations.FS); err != nil {
		return err
	}
	if err := store.Seed(ctx, n); err != nil {
		return err
	}
	p.Log.Info("catalog seeded", "products", n)
	return nil
}
