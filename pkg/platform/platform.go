// Package platform wires what every service starts with — logger, tracing,
// metrics, fix switches, Postgres, Redis, NATS, probes and the server — so that
// a service's main.go only adds what is its own.
package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/health"
	"github.com/stampede-shop/stampede/pkg/logging"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/server"
	"github.com/stampede-shop/stampede/pkg/telemetry"
)

// Version is stamped at build time
// (-ldflags "-X github.com/stampede-shop/stampede/pkg/platform.Version=v1.2.3")
// and logged on every line, so a log line says which build wrote it.
var Version = "dev"

// Platform is a service's shared machinery, opened but not yet connected.
type Platform struct {
	Config   config.Common
	Log      *slog.Logger
	Board    *fixes.Board
	Registry *prometheus.Registry
	DB       *db.DB
	Redis    *redis.Client
	Cache    *cache.Store
	NATS     *nats.Conn
	JS       jetstream.JetStream
	Health   *health.Checker
	Observer *resilience.Observer
	Shedder  *resilience.Shedder
	Server   *server.Server

	closers []func(context.Context) error
}

// Open builds the platform. Nothing here waits for a dependency: clients
// connect lazily, so the probes can answer while Start waits for them.
func Open(ctx context.Context, cfg config.Common, stdout io.Writer, getenv func(string) string) (*Platform, error) {
	log := logging.New(stdout, cfg.Service, cfg.LogLevel).With("version", Version)
	set, err := fixes.Parse(cfg.Fixes)
	if err != nil {
		return nil, &config.Error{Var: "FIXES", Problem: err.Error()}
	}
	p := &Platform{Config: cfg, Log: log, Board: fixes.NewBoard(set, log), Registry: telemetry.NewRegistry()}

	shutdownTracing, err := telemetry.SetupTracing(ctx, cfg.Service, getenv)
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, shutdownTracing)

	if p.DB, err = db.Open(cfg.DatabaseURL.Reveal(), cfg.DB, p.Board); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func(context.Context) error { return p.DB.Close() })
	telemetry.RegisterDBPool(p.Registry, cfg.Service, p.DB.SQL())

	p.Observer = resilience.NewObserver(p.Registry, log)
	if p.Redis, err = cache.Open(cfg.RedisURL.Reveal()); err != nil {
		return nil, err
	}
	// fix: breaker — Redis has one too: while it is down, its callers go
	// straight to their fallbacks instead of waiting on it first.
	resilience.BreakRedis(p.Redis, resilience.BreakerSettings{}, p.Board, p.Observer)
	p.closers = append(p.closers, func(context.Context) error { return p.Redis.Close() })
	p.Cache = cache.NewStore(p.Redis, cfg.RedisPrefix)
	telemetry.RegisterRedisPool(p.Registry, p.Redis)

	if p.NATS, p.JS, err = events.Connect(cfg.NATSURL, cfg.Service, log); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func(context.Context) error { p.NATS.Close(); return nil })

	p.Health = health.New(p.Board, time.Second)
	p.Health.Add("postgres", p.DB.Ping)
	// Redis's callers fall back to the database and to a local limit, and
	// the order events wait in the outbox while NATS is away: the service
	// serves on without either (replay scenarios redis-outage, nats-outage).
	p.Health.AddWithFallback("redis", func(ctx context.Context) error { return p.Redis.Ping(ctx).Err() })
	p.Health.AddWithFallback("nats", events.Check(p.NATS, p.JS))

	p.Shedder = resilience.NewShedder(resilience.ShedSettings{
		Name: cfg.Service, Target: cfg.Requests.ShedTarget, CPUWait: cfg.Requests.ShedCPUWait,
	}, p.Observer)
	p.Health.AddInfo("load", func() any {
		return map[string]int{"concurrency_limit": p.Shedder.Limit(), "inflight": p.Shedder.Inflight(),
			"cpu_wait_target_us": int(p.Shedder.CPUWait().Microseconds()), "cpu_cap_per_s": int(p.Shedder.CPUCap())}
	})
	p.Server = server.New(server.Options{Config: cfg, Log: log, Board: p.Board, Registry: p.Registry, Health: p.Health, Shedder: p.Shedder})
	return p, nil
}

// Limiter is a budget of perSecond requests a second per key, with bursts
// of the same size, named name. It is kept in Redis (GCRA) under the
// service's prefix, so every replica shares it and scaling out does not
// multiply it; see resilience.RedisLimiter for what happens while Redis is
// down.
func (p *Platform) Limiter(name string, perSecond int) resilience.Limiter {
	return resilience.NewRedisLimiter(p.Redis, p.Config.RedisPrefix+"rate:"+name+":", perSecond, perSecond, p.Observer)
}

// Prepare is the start-up every service shares: wait for the dependencies
// (bounded: about a minute, then the process exits and its supervisor
// restarts it), apply the migrations under Postgres's advisory lock, set up
// the events (startEvents): the ORDERS stream, and what the service consumes
// of it (consume, if not nil: it returns how to stop it, which runs at
// shutdown), and then sweep the service's tables (housekeep) until it shuts
// down.
func (p *Platform) Prepare(ctx context.Context, migrations fs.FS, consume func(context.Context) (stop func(), err error), sweeps ...db.Sweep) error {
	if err := p.Health.WaitReady(ctx, p.Log, 60, time.Second); err != nil {
		return err
	}
	if err := db.Migrate(ctx, p.Config.DatabaseURL.Reveal(), migrations, p.Log); err != nil {
		return err
	}
	if err := p.startEvents(ctx, consume); err != nil {
		return err
	}
	p.housekeep(ctx, sweeps...)
	return nil
}

// A service sweeps its tables (db.Sweep) a minute after it starts, out of the
// way of its start, and every ten minutes after that.
const (
	HousekeepFirst = time.Minute
	HousekeepEvery = 10 * time.Minute
)

// housekeep sweeps the service's tables until the server shuts down, once
// the migrations have made them.
func (p *Platform) housekeep(ctx context.Context, sweeps ...db.Sweep) {
	s := db.NewSweeper(p.DB, p.Registry, p.Log, sweeps...)
	p.Background(ctx, func(ctx context.Context) { s.Run(ctx, HousekeepFirst, HousekeepEvery) }, nil)
}

// Background runs fn until the server shuts down: once the API has drained,
// fn's context ends, Background waits for fn to return, then runs after (if
// not nil) with the shutdown's context.
func (p *Platform) Background(ctx context.Context, fn func(context.Context), after func(context.Context) error) {
	bctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { fn(bctx); close(done) }()
	p.Server.OnShutdown(func(ctx context.Context) error {
		stop()
		<-done
		if after == nil {
			return nil
		}
		return after(ctx)
	})
}

// startEvents declares the ORDERS stream and starts consume. With the probes
// fix a service starts without NATS (and without Redis: WaitReady does not
// wait for either), as it serves without them (health.AddWithFallback): if
// NATS does not answer, this is retried in the background until it does.
// Without the fix, as in the incident, a process that starts during a NATS
// outage waits for it, and after a minute exits, to be restarted and wait
// again.
func (p *Platform) startEvents(ctx context.Context, consume func(context.Context) (stop func(), err error)) error {
	var mu sync.Mutex
	var stop func()
	p.Server.OnShutdown(func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if stop != nil {
			stop()
		}
		return nil
	})
	setUp := func() error {
		declare, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := events.EnsureOrdersStream(declare, p.JS, events.Orders(p.Config.EventsNamespace)); err != nil || consume == nil {
			return err
		}
		s, err := consume(ctx)
		mu.Lock()
		stop = s
		mu.Unlock()
		return err
	}
	err := setUp()
	if err == nil || !p.Board.On(fixes.Probes) {
		return err
	}
	// fix: probes — the service serves without NATS: its events wait (the
	// outbox) or arrive late (the consumers), and come once NATS is back.
	p.Log.Warn("events not set up; serving without them, retrying in the background", "error", err)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
			if err := setUp(); err == nil {
				p.Log.Info("events set up")
				return
			}
		}
	}()
	return nil
}

// Close releases everything Open made, newest first.
func (p *Platform) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("platform: close: %w", err)
	}
	return nil
}

// Healthcheck is a service's "healthcheck" subcommand, for container health
// checks in images that have no shell or curl: it asks the service's own
// /readyz on HTTP_ADDR and answers with the exit code (nil: ready).
func Healthcheck(ctx context.Context, getenv func(string) string, defaultAddr string) error {
	addr := getenv("HTTP_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /readyz answered %d", resp.StatusCode)
	}
	return nil
}

// Exit ends a service's main: nothing on success, one line and exit code 2
// for a configuration error, 1 for anything else.
func Exit(service string, err error) {
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, service+":", err)
	if config.IsError(err) {
		os.Exit(config.ExitCode)
	}
	os.Exit(1)
}

// Seed is a service's "seed [N]" subcommand: migrate, then fill the first N
// products of the shared catalog (catalog.DefaultSize without N) with fill.
func (p *Platform) Seed(ctx context.Context, args []string, migrations fs.FS, fill func(ctx context.Context, n int) error) error {
	n := catalog.DefaultSize
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 {
			return fmt.Errorf("seed: the count must be a positive integer, got %q", args[0])
		}
		n = v
	}
	if err := p.Prepare(ctx, migrations, nil); err != nil {
		return err
	}
	if err := fill(ctx, n); err != nil {
		return err
	}
	p.Log.Info("seeded", "products", n)
	return nil
}
