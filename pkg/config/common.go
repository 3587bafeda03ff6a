package config

import (
	"log/slog"
	"time"
)

// Common is the configuration every Stampede service shares. A service embeds
// it in its own Config and adds what is particular to it.
type Common struct {
	Service    string
	Production bool
	LogLevel   slog.Level

	HTTPAddr  string // API, health probes
	AdminAddr string // /metrics, /debug/pprof, /admin/fixes

	DatabaseURL Secret // carries a password
	RedisURL    Secret // may carry a password
	NATSURL     string
	AdminToken  Secret

	// TrustedProxies are the addresses or CIDRs whose X-Forwarded-For is
	// believed when finding a client's IP (TRUSTED_PROXIES, comma-separated).
	TrustedProxies []string

	// Fixes is the FIXES value: naive, resilient, or a list of fix names
	// (parsed by package fixes, which knows the names).
	Fixes string

	// EventsNamespace prefixes the JetStream stream and subjects. Empty in
	// every deployment; tests set it so that parallel tests never share a stream.
	EventsNamespace string
	// RedisPrefix prefixes every Redis key this service writes, for the same reason.
	RedisPrefix string

	DB       DB
	Requests Requests
}

// DB sizes the connection pool. With the pool_guard fix, a request waits at
// most AcquireTimeout for a connection and then gets a fast 503.
type DB struct {
	MaxOpen          int
	MaxIdle          int
	AcquireTimeout   time.Duration
	StatementTimeout time.Duration
}

// Requests bounds the work a request may cause.
type Requests struct {
	Timeout       time.Duration // per-request deadline (fix: timeouts)
	BodyLimit     int64         // bytes (fix: body_limit)
	ShutdownGrace time.Duration // drain window on SIGTERM (fix: graceful_shutdown)
	DrainDelay    time.Duration // readiness fails this long before the listener closes
	// ShedTarget is the latency the adaptive concurrency limit steers to
	// (fix: shedding): about a quarter of the p99 objective (200 ms), so that
	// queueing and scheduling on top of it still leave the tail inside it.
	ShedTarget time.Duration
	// ShedCPUWait is the p99 wait of the service's goroutines for a CPU
	// above which the shedder caps its admissions a second (fix: shedding;
	// 0: off). A request waits for a CPU before the middleware's clock
	// starts, where ShedTarget cannot see it; on a saturated machine that
	// wait, not the handler, made the p99 (numbers in pkg/resilience).
	ShedCPUWait time.Duration
}

// LoadCommon reads the shared variables. httpAddr and adminAddr are the
// service's contract ports from DESIGN.md.
func LoadCommon(e *Env, service, httpAddr, adminAddr string) Common {
	maxOpen := e.Int("DB_MAX_OPEN_CONNS", 20, 1, 1000)
	c := Common{
		Service:    service,
		Production: e.Production(),
		LogLevel:   e.Level(),
		HTTPAddr:   e.String("HTTP_ADDR", httpAddr),
		AdminAddr:  e.String("ADMIN_ADDR", adminAddr),
		// No default: a service pointed at the wrong database is worse than one
		// that refuses to start.
		DatabaseURL:     e.Secret("DATABASE_URL", ""),
		RedisURL:        e.Secret("REDIS_URL", "redis://127.0.0.1:6379/0"),
		NATSURL:         e.DevDefault("NATS_URL", "nats://127.0.0.1:4222"),
		AdminToken:      e.Secret("ADMIN_TOKEN", "dev-admin-token"),
		TrustedProxies:  e.List("TRUSTED_PROXIES"),
		Fixes:           e.String("FIXES", "resilient"),
		EventsNamespace: e.String("EVENTS_NAMESPACE", ""),
		RedisPrefix:     e.String("REDIS_KEY_PREFIX", service+":"),
		DB: DB{
			MaxOpen: maxOpen,
			// As many idle as open: with fewer, every burst closes the
			// connections above the idle count and opens them again a moment
			// later — a Postgres backend forked per burst, exactly when the
			// database is busiest.
			MaxIdle:          e.Int("DB_MAX_IDLE_CONNS", maxOpen, 0, 1000),
			AcquireTimeout:   e.Duration("DB_ACQUIRE_TIMEOUT", 100*time.Millisecond),
			StatementTimeout: e.Duration("DB_STATEMENT_TIMEOUT", 2*time.Second),
		},
		Requests: Requests{
			Timeout:       e.Duration("REQUEST_TIMEOUT", 3*time.Second),
			BodyLimit:     int64(e.Int("BODY_LIMIT_BYTES", 64<<10, 1<<10, 64<<20)),
			ShutdownGrace: e.Duration("SHUTDOWN_GRACE", 10*time.Second),
			DrainDelay:    e.Duration("SHUTDOWN_DRAIN_DELAY", time.Second),
			ShedTarget:    e.Duration("SHED_TARGET_LATENCY", 50*time.Millisecond),
			ShedCPUWait:   e.DurationOrOff("SHED_TARGET_CPU_WAIT", 20*time.Millisecond),
		},
	}
	e.URL("DATABASE_URL", c.DatabaseURL.Reveal(), "postgres", "postgresql")
	e.URL("REDIS_URL", c.RedisURL.Reveal(), "redis", "rediss")
	e.URL("NATS_URL", c.NATSURL, "nats", "tls")
	if c.DB.MaxIdle > c.DB.MaxOpen {
		c.DB.MaxIdle = c.DB.MaxOpen
	}
	return c
}
