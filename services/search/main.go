// Command search is Stampede's search service: the product catalog, full-text
// search with typo tolerance, and the sold counts from order events.
//
//	search             serve
//	search seed [N]    create the schema and insert the first N catalog products (default 10000)
//	search healthcheck  exit 0 if this container's service is ready (for container health checks)
//	search check-config exit 0 if the environment is a complete configuration
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/platform"
	"github.com/stampede-shop/stampede/services/search/migrations"
	"github.com/stampede-shop/stampede/services/search/postgres"
	"github.com/stampede-shop/stampede/services/search/products"
)

func main() {
	platform.Exit("search", run(context.Background(), os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 1 && args[1] == "healthcheck" {
		return platform.Healthcheck(ctx, getenv, ":8082")
	}

	cfg, err := loadConfig(getenv)
	if err != nil || (len(args) > 1 && args[1] == "check-config") {
		return err // check-config: the environment is complete, nothing more to do
	}
	p, err := platform.Open(ctx, cfg.Common, stdout, getenv)
	if err != nil {
		return err
	}
	defer p.Close()
	store := postgres.NewStore(p.DB)

	if len(args) > 1 && args[1] == "seed" {
		return p.Seed(ctx, args[2:], migrations.FS, store.Seed)
	}

	svc := products.NewService(store, p.Cache, products.NewCursors(cfg.CursorSecret.Reveal()), p.Board, p.Observer, p.Log)
	addRoutes(p.Server.API(), p, cfg, svc)

	return p.Server.Run(ctx, func(ctx context.Context) error {
		// Sold counts for every order, exactly once: acked after their commit.
		return p.Prepare(ctx, migrations.FS, func(ctx context.Context) (func(), error) {
			return events.ConsumeOrderCreated(ctx, p.JS, events.Orders(cfg.EventsNamespace), products.SoldConsumer, p.Log, svc.ApplyOrderCreated)
		}, events.HandledSweep)
	})
}
