package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/pkg/loopback"
)

// Services are the three services, in the order they start.
var Services = []string{"user", "search", "order"}

// Build compiles the services of the checkout at repo into dir and returns
// the binaries by service name. Go relinks a binary only when what it is
// built from changed (relinking the three takes 11–14 s on 2 cores); with a
// version stamp that would include the checkout's commit and whether it is
// clean, which the replay's binaries have no use for. `make replay` runs the
// same build before the replay starts, where it can count the packages as
// they compile.
func Build(ctx context.Context, repo, dir string) (map[string]string, error) {
	bins := map[string]string{}
	args := []string{"build", "-buildvcs=false", "-o", dir + "/"}
	for _, s := range Services {
		args = append(args, "./services/"+s)
		bins[s] = filepath.Join(dir, s)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bins, nil
}

// Deps are the dependencies every run uses: the local Postgres server (a
// URL of a database the runs can create theirs from), Redis and NATS.
type Deps struct {
	Postgres string // postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
	Redis    string
	NATS     string
}

// Native is the shop running from the binaries on this machine, with fresh
// databases, key prefix and event namespace of its own.
type Native struct {
	deps      Deps
	run       string // the name that prefixes this stack's databases, keys and streams
	procs     map[string]*Process
	api       map[string]string
	admin     map[string]string
	databases map[string]string // service → database URL (direct, not through the proxy)
	postgres  *toxiproxy.Proxy  // with ProxyPostgres, every service reaches Postgres through this
	nats      *toxiproxy.Proxy  // with ProxyNATS, every service reaches NATS through this
	redis     *toxiproxy.Proxy  // with ProxyRedis, every service reaches Redis through this
	users     *toxiproxy.Proxy  // with ProxyUsers, the order service reaches the user service through this
}

// Options shape a native stack.
type Options struct {
	Fixes    string // FIXES for every service
	Products int    // catalog size to seed
	LogDir   string // where each service's log goes
	OnEvent  func(Event)
	Probe    Probe
	// Env adds or overrides variables of every service.
	Env map[string]string
	// ProxyPostgres puts Toxiproxy between the services and Postgres, so
	// that PostgresDown can cut it and SlowPostgres slow it; ProxyNATS and
	// ProxyRedis do the same for NATS and Redis; ProxyUsers puts it between
	// the order service and the user service, for SlowUsers. Only a run that
	// injects the fault should ask: a proxy is not free. It copies every byte
	// through goroutines and channels in the replay's process, and in the
	// promo spike the Postgres proxy took 40 % of that process's CPU — on a
	// machine whose CPUs the shop needs all of — and two more thread
	// wake-ups per query, each of them a wait for a CPU.
	ProxyPostgres, ProxyNATS, ProxyRedis, ProxyUsers bool
}

// AdminToken is the admin token the replay's stacks use.
const AdminToken = "replay-admin-token"

// StartNative creates the databases, seeds them, starts the proxies and the
// three services, and waits until all are ready.
func StartNative(ctx context.Context, deps Deps, bins map[string]string, o Options) (_ *Native, err error) {
	s := &Native{deps: deps, run: name("replay_"), procs: map[string]*Process{},
		api: map[string]string{}, admin: map[string]string{}, databases: map[string]string{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	tp := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	var pgVia, natsVia, redisVia, usersVia string
	if s.postgres, pgVia, err = via(tp, o.ProxyPostgres, "postgres", deps.Postgres); err != nil {
		return nil, err
	}
	if s.nats, natsVia, err = via(tp, o.ProxyNATS, "nats", deps.NATS); err != nil {
		return nil, err
	}
	if s.redis, redisVia, err = via(tp, o.ProxyRedis, "redis", deps.Redis); err != nil {
		return nil, err
	}
	ports, err := s.listen()
	if err != nil {
		return nil, err
	}
	if s.users, usersVia, err = via(tp, o.ProxyUsers, "users", s.api["user"]); err != nil {
		return nil, err
	}

	common := map[string]string{
		"APP_ENV": "development", "LOG_LEVEL": "info", "FIXES": o.Fixes,
		"REDIS_URL": redisVia, "NATS_URL": natsVia, "ADMIN_TOKEN": AdminToken,
		"JWT_SECRET":       "replay-jwt-secret-of-at-least-32-bytes",
		"EVENTS_NAMESPACE": s.run, "TRUSTED_PROXIES": "127.0.0.1",
		"USER_SERVICE_URL": usersVia, "SEARCH_SERVICE_URL": s.api["search"],
		"OTEL_SDK_DISABLED": "true",
	}
	maps.Copy(common, o.Env)
	for _, svc := range Services {
		database := "/" + s.run + "_" + svc + "?"
		direct := strings.Replace(deps.Postgres, "/postgres?", database, 1)
		if err := db.EnsureDatabase(ctx, direct); err != nil {
			return nil, err
		}
		s.databases[svc] = direct
		env := os.Environ()
		for k, v := range common {
			env = append(env, k+"="+v)
		}
		env = append(env, "HTTP_ADDR="+ports[svc][0], "ADMIN_ADDR="+ports[svc][1],
			"DATABASE_URL="+strings.Replace(pgVia, "/postgres?", database, 1), "REDIS_KEY_PREFIX="+s.run+":"+svc+":")
		log, err := logFile(o.LogDir, svc)
		if err != nil {
			return nil, err
		}
		s.procs[svc] = &Process{Name: svc, Bin: bins[svc], Env: env, API: s.api[svc], Log: log, Probe: o.Probe, OnEvent: o.OnEvent}
	}
	if err := s.seedAndStart(ctx, o.Products, o.LogDir); err != nil {
		return nil, err
	}
	return s, nil
}

// via returns the URL the services reach a dependency at u by: u itself,
// or, when a fault is to cut that path (want), the same through a proxy of
// tp's, which it returns too (nil: none).
func via(tp *toxiproxy.ApiServer, want bool, name, u string) (*toxiproxy.Proxy, string, error) {
	if !want {
		return nil, u, nil
	}
	upstream, err := hostPort(u)
	if err != nil {
		return nil, "", err
	}
	p := toxiproxy.NewProxy(tp, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, "", fmt.Errorf("toxiproxy for %s: %w", name, err)
	}
	return p, strings.Replace(u, upstream, p.Listen, 1), nil
}

// seedAndStart seeds the catalog and the inventory, from one seed as in
// production, then starts the three services and waits until each is ready.
func (s *Native) seedAndStart(ctx context.Context, products int, logDir string) error {
	for _, svc := range []string{"search", "order"} {
		p := s.procs[svc]
		cmd := exec.CommandContext(ctx, p.Bin, "seed", strconv.Itoa(products))
		cmd.Env, cmd.Stdout, cmd.Stderr = p.Env, p.Log, p.Log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s seed: %w (see %s.log)", svc, err, svc)
		}
	}
	for _, svc := range Services {
		s.procs[svc].Start(ctx)
	}
	for _, svc := range Services {
		if err := waitReady(ctx, s.api[svc], time.Minute); err != nil {
			return fmt.Errorf("%s did not become ready: %w; the end of its log:\n%s", svc, err, tail(filepath.Join(logDir, svc+".log"), 15))
		}
	}
	return nil
}

// API returns the base URL of a service's API.
func (s *Native) API(svc string) string { return s.api[svc] }

// Admin returns the base URL of a service's admin listener.
func (s *Native) Admin(svc string) string { return s.admin[svc] }

// Database returns a service's database URL, straight to Postgres.
func (s *Native) Database(svc string) string { return s.databases[svc] }

// Namespace is the JetStream namespace of the stack's events.
func (s *Native) Namespace() string { return s.run }

// Restarts returns each service's restart count.
func (s *Native) Restarts() map[string]int {
	m := map[string]int{}
	for name, p := range s.procs {
		m[name] = p.Restarts()
	}
	return m
}

// Up reports which services are running now.
func (s *Native) Up() map[string]bool {
	m := map[string]bool{}
	for name, p := range s.procs {
		m[name] = p.Up()
	}
	return m
}

// PostgresDown makes Postgres unreachable (down = true: every connection
// through the proxy is closed, new ones are refused) or reachable again.
func (s *Native) PostgresDown(down bool) error {
	if s.postgres == nil {
		return errors.New("this stack reaches Postgres directly (start it with ProxyPostgres)")
	}
	return cut(s.postgres, down)
}

// SlowPostgres delays every answer Postgres gives the services by latency,
// or removes the delay (latency 0). Each round trip pays it: a query, and
// each of a transaction's BEGIN, statements and COMMIT.
func (s *Native) SlowPostgres(latency time.Duration) error {
	if s.postgres == nil {
		return errors.New("this stack reaches Postgres directly (start it with ProxyPostgres)")
	}
	return setToxic(s.postgres, "slow", slowToxic(latency), latency > 0)
}

// NATSDown makes NATS unreachable, or reachable again, as PostgresDown does
// Postgres.
func (s *Native) NATSDown(down bool) error {
	if s.nats == nil {
		return errors.New("this stack reaches NATS directly (start it with ProxyNATS)")
	}
	return cut(s.nats, down)
}

// RedisDown makes Redis stop answering (down = true), or answer again. Not
// as PostgresDown does: its connections stay open and carry nothing, as in a
// network partition, so every command waits for its timeout. That is the
// harder outage for Redis's callers: one that refuses costs them a refused
// dial, which the shop absorbs without a breaker (measured).
func (s *Native) RedisDown(down bool) error {
	if s.redis == nil {
		return errors.New("this stack reaches Redis directly (start it with ProxyRedis)")
	}
	return setToxic(s.redis, "hang", hangToxic, down)
}

// hangToxic is Toxiproxy's timeout toxic with no timeout: nothing comes back,
// and the connection is never closed.
const hangToxic = `{"name":"hang","type":"timeout","stream":"downstream","attributes":{"timeout":0}}`

// slowToxic is a latency toxic on the answers.
func slowToxic(latency time.Duration) string {
	return fmt.Sprintf(`{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":%d}}`, latency.Milliseconds())
}

// setToxic adds toxic (its JSON, named name) to p, or removes it.
func setToxic(p *toxiproxy.Proxy, name, toxic string, on bool) error {
	if !on {
		return p.Toxics.RemoveToxic(context.Background(), name)
	}
	_, err := p.Toxics.AddToxicJson(strings.NewReader(toxic))
	return err
}

func cut(p *toxiproxy.Proxy, down bool) error {
	if down {
		p.Stop()
		return nil
	}
	return p.Start()
}

// SlowUsers delays the user service's answers to the order service by
// latency, or removes the delay (latency 0).
func (s *Native) SlowUsers(latency time.Duration) error {
	if s.users == nil {
		return errors.New("the order service reaches the user service directly (start the stack with ProxyUsers)")
	}
	return setToxic(s.users, "slow", slowToxic(latency), latency > 0)
}

// Close stops the services (SIGTERM, grace, SIGKILL) and the proxies, and
// removes the databases, keys and streams the stack created.
func (s *Native) Close() {
	// All at once, as a kubelet deletes a deployment's pods: each service
	// fails its readiness for SHUTDOWN_DRAIN_DELAY (1 s) before it closes
	// its listener, and one after another they were 4–5 s of every shop's end.
	var stopping sync.WaitGroup
	for _, p := range s.procs {
		if p.done != nil {
			stopping.Go(p.Stop)
		}
	}
	stopping.Wait()
	for _, p := range s.procs {
		if c, ok := p.Log.(io.Closer); ok {
			c.Close()
		}
	}
	for _, p := range []*toxiproxy.Proxy{s.postgres, s.nats, s.redis, s.users} {
		if p != nil {
			p.Stop()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, s.deps.Postgres); err == nil {
		for _, u := range s.databases {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+dbName(u)+" WITH (FORCE)")
		}
		conn.Close(ctx)
	}
	if opts, err := redis.ParseURL(s.deps.Redis); err == nil {
		rdb := redis.NewClient(opts)
		_ = cache.DeletePrefix(ctx, rdb, s.run+":")
		rdb.Close()
	}
	if nc, err := nats.Connect(s.deps.NATS); err == nil {
		if js, err := jetstream.New(nc); err == nil {
			for n := range js.StreamNames(ctx).Name() {
				if strings.HasPrefix(n, s.run+"_") {
					_ = js.DeleteStream(ctx, n)
				}
			}
		}
		nc.Close()
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func dbName(u string) string {
	name := u[strings.LastIndex(u, "/")+1:]
	return name[:strings.IndexByte(name+"?", '?')]
}

// hostPort returns the host:port a URL (postgres://…, nats://…) points at.
func hostPort(u string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	if _, _, err := net.SplitHostPort(parsed.Host); err != nil {
		return "", fmt.Errorf("URL %q: host:port: %w", u, err)
	}
	return parsed.Host, nil
}

func name(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// listen gives each service an API and an admin address of its own, and
// records the URLs the replay reaches them at.
func (s *Native) listen() (map[string][2]string, error) {
	addrs := map[string][2]string{}
	for _, svc := range Services {
		api, err := loopback.FreeAddr()
		if err != nil {
			return nil, err
		}
		admin, err := loopback.FreeAddr()
		if err != nil {
			return nil, err
		}
		addrs[svc] = [2]string{api, admin}
		s.api[svc], s.admin[svc] = "http://"+api, "http://"+admin
	}
	return addrs, nil
}

// waitReady polls /readyz until it answers 200.
func waitReady(ctx context.Context, api string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/readyz", nil)
		resp, err := probeClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("readyz %d", resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(200 * time.Millisecond):
		}
	}
}
