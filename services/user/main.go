// Command user is Stampede's user service: accounts, sessions and loyalty
// points. main only calls run, so tests start the real service in-process
// with an environment of their own.
//
//	user              serve
//	user healthcheck  exit 0 if this container's service is ready (for container health checks)
//	user check-config exit 0 if the environment is a complete configuration
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/platform"
	"github.com/stampede-shop/stampede/services/user/account"
	"github.com/stampede-shop/stampede/services/user/migrations"
	"github.com/stampede-shop/stampede/services/user/postgres"
	"github.com/stampede-shop/stampede/services/user/redis"
)

func main() {
	platform.Exit("user", run(context.Background(), os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 1 && args[1] == "healthcheck" {
		return platform.Healthcheck(ctx, getenv, ":8081")
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

	tokens := auth.NewTokens(cfg.JWTSecret.Reveal(), cfg.TokenTTL)
	svc, err := account.NewService(postgres.NewStore(p.DB), redis.NewProfiles(p.Cache, cfg.ProfileTTL), tokens, cfg.BcryptCost, p.Log)
	if err != nil {
		return err
	}
	addRoutes(p.Server.API(), p, cfg, svc, tokens)

	return p.Server.Run(ctx, func(ctx context.Context) error {
		// Points for every order, exactly once: acked after their commit.
		return p.Prepare(ctx, migrations.FS, func(ctx context.Context) (func(), error) {
			return events.ConsumeOrderCreated(ctx, p.JS, events.Orders(cfg.EventsNamespace), account.PointsConsumer, p.Log, svc.ApplyOrderCreated)
		}, events.HandledSweep)
	})
}
