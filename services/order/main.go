// Command order is Stampede's order service, where the promotion outage
// happens: the flash-sale path in its naive and resilient forms, switched by
// the fixes, with idempotency keys and a transactional outbox.
//
//	order              serve
//	order seed [N]     create the schema and the inventory of the first N catalog products (default 10000)
//	order healthcheck  exit 0 if this container's service is ready (for container health checks)
//	order check-config exit 0 if the environment is a complete configuration
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/platform"
	"github.com/stampede-shop/stampede/services/order/httpclient"
	"github.com/stampede-shop/stampede/services/order/migrations"
	"github.com/stampede-shop/stampede/services/order/nats"
	"github.com/stampede-shop/stampede/services/order/orders"
	"github.com/stampede-shop/stampede/services/order/postgres"
	"github.com/stampede-shop/stampede/services/order/redis"
)

func main() {
	platform.Exit("order", run(context.Background(), os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 1 && args[1] == "healthcheck" {
		return platform.Healthcheck(ctx, getenv, ":8083")
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
	names := events.Orders(cfg.EventsNamespace)
	store := postgres.NewStore(p.DB, names.OrderCreated)

	if len(args) > 1 && args[1] == "seed" {
		return p.Seed(ctx, args[2:], migrations.FS, store.Seed)
	}

	m := newMetrics(p.Registry)
	gate := redis.NewGate(p.Redis, cfg.RedisPrefix, store, func(result string) { m.gate.WithLabelValues(result).Inc() })
	svc := orders.NewService(store, gate,
		httpclient.NewUsers(cfg.UserServiceURL, p.Cache, p.Board, p.Observer),
		httpclient.NewCatalog(cfg.SearchServiceURL, p.Cache, p.Board, p.Observer),
		nats.Direct{JS: p.JS, Subject: names.OrderCreated},
		p.Cache, p.Board, p.Observer, p.Log)
	relay := nats.NewRelay(store, p.JS, p.Registry, p.Log)
	addRoutes(p.Server.API(), p, auth.NewTokens(cfg.JWTSecret.Reveal(), time.Hour), svc, relay, m)

	return p.Server.Run(ctx, func(ctx context.Context) error {
		if err := p.Prepare(ctx, migrations.FS, nil, postgres.Sweeps...); err != nil {
			return err
		}
		p.Background(ctx, relay.Run, func(ctx context.Context) error {
			// fix: graceful_shutdown — in-flight orders have drained; send
			// their events before the process goes.
			if _, err := relay.Flush(ctx); err != nil {
				// Nothing is lost: the events wait in Postgres for the next relay.
				p.Log.Warn("outbox not flushed before exit; the next relay will send it", "error", err)
			}
			return nil
		})
		return nil
	})
}

// metrics are the series the replay charts.
type metrics struct {
	created  prometheus.Counter
	rejected *prometheus.CounterVec
	gate     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		created: prometheus.NewCounter(prometheus.CounterOpts{Name: "orders_created_total", Help: "Orders placed."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orders_rejected_total",
			Help: "Order requests refused, by reason (the error code clients see)."}, []string{"reason"}),
		gate: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stock_gate_decisions_total",
			Help: "Decisions of the Redis stock gate: admitted, sold_out, rebuilt."}, []string{"result"}),
	}
	reg.MustRegister(m.created, m.rejected, m.gate)
	return m
}
