// Package server is the bootstrap every Stampede service runs on: a Gin API
// listener with the shared middleware and probes, an admin listener with
// metrics, pprof and the fix switches, start-up gating, and graceful shutdown.
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/health"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/telemetry"
	"github.com/stampede-shop/stampede/pkg/web"
)

// Options are what a service hands the bootstrap.
type Options struct {
	Config   config.Common
	Log      *slog.Logger
	Board    *fixes.Board
	Registry *prometheus.Registry
	Health   *health.Checker
	// Shedder is the adaptive concurrency limit at the door (fix: shedding).
	Shedder *resilience.Shedder
}

// Server is a service's two listeners.
type Server struct {
	listening  chan Addrs
	opts       Options
	api        *gin.Engine
	admin      *gin.Engine
	onShutdown []func(context.Context) error
}

// OnShutdown adds a hook that runs after the API has drained, within the
// grace period: stop consumers, flush the outbox. Call it before Run returns.
func (s *Server) OnShutdown(fn func(context.Context) error) { s.onShutdown = append(s.onShutdown, fn) }

// New builds the engines. Add the service's routes to API() and, if it has
// any, its admin routes to Admin(); then call Run.
func New(o Options) *Server {
	configureGin(o)
	if o.Shedder == nil {
		o.Shedder = resilience.NewShedder(resilience.ShedSettings{}, nil)
	}
	s := &Server{opts: o, api: gin.New(), admin: gin.New(), listening: make(chan Addrs, 1)}
	s.api.ContextWithFallback = true // c.Done()/c.Err() follow the request context
	s.api.HandleMethodNotAllowed = true
	// Forwarded headers are believed only from the configured proxies (the
	// gateway); from anyone else they are a way to pick your own rate-limit key.
	if err := s.api.SetTrustedProxies(o.Config.TrustedProxies); err != nil {
		o.Log.Error("bad TRUSTED_PROXIES; trusting none", "error", err)
		_ = s.api.SetTrustedProxies(nil)
	}
	log, board := o.Log, o.Board

	// Probes come first, outside the middleware: they must answer even when
	// the API cannot, and must never be shed, limited or traced.
	s.api.GET("/livez", o.Health.HandleLive)
	s.api.GET("/readyz", o.Health.HandleReady)
	s.api.GET("/healthz", o.Health.HandleReady)

	// The door comes as early as it can: a request is given its id (the
	// refusal names it) and counted (the metrics time refusals too), then
	// refused or let in. Tracing, the access log and the rest are for what
	// is let in: in a spike most requests are refused, and a span costs more
	// than a refusal (loadtest/MEASUREMENTS.md has the profile). Recover
	// stays inside the tracing, so that a panic's log line carries its
	// trace_id (otelgin takes the span out of the request as it unwinds);
	// the few lines before it, ours and the metrics', are not handlers.
	s.api.Use(
		RequestID(),
		telemetry.HTTPMetrics(o.Registry),
		resilience.Shed(o.Shedder, resilience.InternalIsCritical("/internal/"), board, log),
		otelgin.Middleware(o.Config.Service),
		AccessLog(log),
		Recover(log, board),
		s.startupGate(),
		BodyLimit(o.Config.Requests.BodyLimit, log, board),
		resilience.Deadline(o.Config.Requests.Timeout, board),
	)
	s.api.NoRoute(func(c *gin.Context) {
		web.Abort(c, log, web.NewError(http.StatusNotFound, "not_found", "no such route"))
	})
	s.api.NoMethod(func(c *gin.Context) {
		web.Abort(c, log, web.NewError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route"))
	})

	s.admin.Use(Recover(log, board))
	s.admin.GET("/metrics", gin.WrapH(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry})))
	s.admin.GET("/debug/pprof/*name", gin.WrapF(pprofHandler))
	admin := s.admin.Group("/admin", s.requireAdmin())
	admin.GET("/fixes", board.HandleGet)
	// The admin token is shared, so "who" is where the change came from.
	admin.PUT("/fixes", board.HandlePut(func(c *gin.Context) string { return "admin-api from " + c.ClientIP() }))
	admin.GET("/shedding", handleSheddingGet(o.Shedder))
	admin.PUT("/shedding", handleSheddingPut(o.Shedder, log))
	return s
}

// ginOnce guards Gin's process-wide settings: one process may run several
// servers (tests do), and the first one sets them.
var ginOnce sync.Once

func configureGin(o Options) {
	ginOnce.Do(func() {
		if o.Config.Production {
			gin.SetMode(gin.ReleaseMode)
		}
		// Gin's debug output (route table, warnings) goes to the JSON log too.
		gin.DebugPrintFunc = func(format string, values ...any) {
			o.Log.Debug(strings.TrimSpace(fmt.Sprintf(format, values...)), "component", "gin")
		}
		gin.DebugPrintRouteFunc = func(method, path, _ string, handlers int) {
			o.Log.Debug("route", "method", method, "path", path, "handlers", handlers)
		}
	})
}

// Addrs are the addresses the listeners are bound to.
type Addrs struct{ API, Admin string }

// Listening delivers the bound addresses once both listeners are open, which
// is how a test that asked for port 0 learns its ports.
func (s *Server) Listening() <-chan Addrs { return s.listening }

// API returns the API engine, for the service's routes.
func (s *Server) API() *gin.Engine { return s.api }

// Admin returns the authenticated /admin group of the admin listener.
func (s *Server) Admin() *gin.RouterGroup { return s.admin.Group("/admin", s.requireAdmin()) }

func pprofHandler(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r) // the index and the named profiles (heap, goroutine, ...)
	}
}

// requireAdmin checks the Bearer ADMIN_TOKEN in constant time, so the
// response time does not leak how much of a guess was right.
func (s *Server) requireAdmin() gin.HandlerFunc {
	want := []byte(s.opts.Config.AdminToken.Reveal())
	return func(c *gin.Context) {
		got, _ := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if len(want) == 0 || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			web.Abort(c, s.opts.Log, web.NewError(http.StatusUnauthorized, "unauthorized", "the admin token is required"))
			return
		}
		c.Next()
	}
}

// startupGate answers 503 until start-up (dependencies, migrations) is done,
// so a request never meets a half-initialised service.
func (s *Server) startupGate() gin.HandlerFunc {
	starting := &web.Error{Status: http.StatusServiceUnavailable, Code: "starting", Message: "the service is starting", RetryAfter: time.Second}
	return func(c *gin.Context) {
		if !s.opts.Health.Started() {
			web.Abort(c, s.opts.Log, starting)
			return
		}
		c.Next()
	}
}

// Run serves until ctx ends (SIGTERM in main), then shuts down.
//
// The listeners open first, so the probes answer while startup runs: /livez
// 200, /readyz 503 "starting". startup waits for dependencies and migrates; if
// it fails, Run shuts down and returns its error.
func (s *Server) Run(ctx context.Context, startup func(context.Context) error) error {
	cfg, log := s.opts.Config, s.opts.Log
	var lc net.ListenConfig
	apiLn, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("server: listen %s: %w", cfg.HTTPAddr, err)
	}
	adminLn, err := lc.Listen(ctx, "tcp", cfg.AdminAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("server: listen %s: %w", cfg.AdminAddr, err)
	}
	api := s.httpServer(s.api)
	admin := s.httpServer(s.admin)
	errc := make(chan error, 3)
	go func() { errc <- serve(api, apiLn) }()
	go func() { errc <- serve(admin, adminLn) }()
	log.Info("listening", "api", apiLn.Addr().String(), "admin", adminLn.Addr().String(), "fixes", s.opts.Board.Current().String())
	s.listening <- Addrs{API: apiLn.Addr().String(), Admin: adminLn.Addr().String()}

	go func() {
		if err := startup(ctx); err != nil {
			errc <- fmt.Errorf("startup: %w", err)
			return
		}
		s.opts.Health.MarkStarted()
		log.Info("started")
	}()

	select {
	case <-ctx.Done():
		log.Info("shutdown signal received")
		return s.shutdown(api, admin)
	case err := <-errc:
		api.Close()
		admin.Close()
		return err
	}
}

func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	// Without the timeouts fix the server has none at all, on purpose: that
	// is the naive profile, and the incident.
	srv := &http.Server{Handler: h, ErrorLog: slog.NewLogLogger(s.opts.Log.Handler(), slog.LevelWarn)} //nolint:gosec // G112, see above
	if s.opts.Board.On(fixes.Timeouts) {
		// fix: timeouts — a slow or stalled client cannot hold a connection
		// and its goroutine for ever. Read at start: http.Server copies them.
		rt := s.opts.Config.Requests.Timeout
		srv.ReadHeaderTimeout = 5 * time.Second
		srv.ReadTimeout = 10 * time.Second
		srv.WriteTimeout = rt + 5*time.Second // past the request deadline, so the handler's 503 can still be written
		srv.IdleTimeout = 60 * time.Second
	}
	return srv
}

// shutdown drains in the order that loses nothing: fail readiness so the
// load balancer stops sending, wait for it to notice, stop accepting and let
// in-flight requests finish, then run the service's hooks (outbox, consumers).
func (s *Server) shutdown(api, admin *http.Server) error {
	cfg, log := s.opts.Config.Requests, s.opts.Log
	if !s.opts.Board.On(fixes.GracefulShutdown) {
		// As the incident had it: the process just goes, and every request
		// in flight goes with it.
		api.Close()
		admin.Close()
		log.Warn("stopped without draining (graceful_shutdown is off)")
		return nil
	}
	// fix: graceful_shutdown — readiness fails, in-flight requests drain, hooks flush.
	s.opts.Health.MarkDraining()
	time.Sleep(cfg.DrainDelay)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	var errs []error
	if err := api.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("drain api: %w", err))
	}
	for _, hook := range s.onShutdown {
		if err := hook(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := admin.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("drain admin: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped gracefully")
	return nil
}
