package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// build compiles the service once, for tests that need a real process:
// exit codes and signals.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stampede-user-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "user")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func environ(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func TestMissingDatabaseURLExitsWithCode2(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(build(t))
	cmd.Env = environ(map[string]string{"JWT_SECRET": testSecret})
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("got %v, want exit code 2", err)
	}
	if got := strings.TrimSpace(stderr.String()); got != "user: config: DATABASE_URL: is required" {
		t.Fatalf("stderr %q, want one line naming DATABASE_URL", got)
	}
}

func TestProductionRefusesDevelopmentSecrets(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(build(t))
	cmd.Env = environ(map[string]string{"APP_ENV": "production", "DATABASE_URL": "postgres://u:hunter2@db/users",
		"REDIS_URL": "redis://r:6379", "NATS_URL": "nats://n:4222", "ADMIN_TOKEN": "real-admin-token"})
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "JWT_SECRET") {
		t.Fatalf("got %v %q, want exit 2 naming JWT_SECRET", err, out)
	}
	if strings.Contains(string(out), "hunter2") {
		t.Fatal("a secret reached the output")
	}
}

// A request is in flight when SIGTERM arrives: its body is still arriving.
// The request must complete, then the process must exit 0.
func TestSIGTERMDrainsInFlightRequest(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["SHUTDOWN_DRAIN_DELAY"] = "200ms"
	cmd := exec.Command(build(t))
	cmd.Env = environ(env)
	logs := &testkit.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	in := &instance{&testkit.Instance{Logs: logs}}
	in.API, in.Admin = testkit.Listening(t, logs)
	in.WaitStatus(t, "/readyz", 200, 20*time.Second)

	body := `{"email":"slow@example.com","password":"correct horse battery","name":"Slow"}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(in.API, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
	time.Sleep(100 * time.Millisecond) // the server is now reading the body

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	in.WaitStatus(t, "/readyz", 503, 5*time.Second) // readiness fails first
	if _, err := conn.Write([]byte(body[10:])); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request lost: %v\n%s", err, logs.String())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("in-flight request: %d, want 201", resp.StatusCode)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v, want 0\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `"message":"stopped gracefully"`) {
		t.Fatal("no graceful stop logged")
	}
}

// Started while Postgres is unreachable, the service waits and says so,
// stays alive, reports not ready, and becomes ready once Postgres is back.
func TestWaitsForPostgres(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	proxy := testkit.NewProxy(t, "127.0.0.1:5432", false)
	env["DATABASE_URL"] = strings.Replace(env["DATABASE_URL"], "127.0.0.1:5432", proxy.Addr, 1)
	in := startWith(t, env)

	in.WaitStatus(t, "/livez", 200, 5*time.Second)
	for !strings.Contains(in.Logs.String(), `"attempt":2`) {
		time.Sleep(50 * time.Millisecond)
	}
	r := in.Do(t, "GET", "/readyz", "", "")
	if pg := r.Body["checks"].(map[string]any)["postgres"].(map[string]any); r.Status != 503 || pg["status"] != "down" {
		t.Fatalf("readyz with Postgres down: %d %s", r.Status, r.Raw)
	}
	if r := in.Do(t, "POST", "/v1/users", "", `{}`); r.Status != 503 || r.ErrCode() != "starting" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("API before start-up: %d %s", r.Status, r.Raw)
	}
	n := 0
	for _, line := range strings.Split(in.Logs.String(), "\n") {
		if strings.Contains(line, `"message":"waiting for dependency"`) && strings.Contains(line, `"dependency":"postgres"`) {
			n++
		}
	}
	if n < 2 {
		t.Fatalf("want a log line per retry, got %d", n)
	}

	proxy.SetUp(true)
	in.WaitStatus(t, "/readyz", 200, 10*time.Second)
	in.register(t, "late@example.com")
}

// The healthcheck subcommand is what a container health check runs: exit 0
// while the service is ready, non-zero otherwise.
func TestHealthcheckSubcommand(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["HTTP_ADDR"] = testkit.FreeAddr(t)
	check := func() error {
		cmd := exec.Command(build(t), "healthcheck")
		cmd.Env = environ(map[string]string{"HTTP_ADDR": env["HTTP_ADDR"]})
		return cmd.Run()
	}
	if err := check(); err == nil {
		t.Fatal("healthcheck passed with no service running")
	}
	in := startWith(t, env)
	in.WaitStatus(t, "/readyz", 200, 15*time.Second)
	if err := check(); err != nil {
		t.Fatalf("healthcheck of a ready service: %v", err)
	}
}

// Started while NATS is unreachable, the service serves anyway — it needs
// NATS only for the points of orders, which can come late — and its consumer
// starts once NATS is back (fix: probes). Without the fix it waits for NATS,
// as for Postgres.
func TestStartsWithoutNATS(t *testing.T) {
	t.Parallel()
	for _, fixes := range []string{"resilient", "naive"} {
		t.Run(fixes, func(t *testing.T) {
			t.Parallel()
			env := testEnv(t)
			env["FIXES"] = fixes
			proxy := testkit.NewProxy(t, strings.TrimPrefix(testkit.NATSURL(), "nats://"), false)
			env["NATS_URL"] = "nats://" + proxy.Addr
			in := startWith(t, env)
			if fixes == "naive" {
				for !strings.Contains(in.Logs.String(), `"dependency":"nats","attempt":2`) {
					time.Sleep(50 * time.Millisecond)
				}
				if r := in.Do(t, "GET", "/readyz", "", ""); r.Status != 503 || r.Body["status"] != "starting" {
					t.Fatalf("naive, NATS down: readyz %d %s, want 503 starting", r.Status, r.Raw)
				}
				return
			}
			in.WaitStatus(t, "/readyz", 200, 10*time.Second)
			if r := in.Do(t, "GET", "/readyz", "", ""); r.Body["status"] != "degraded" {
				t.Fatalf("resilient, NATS down: readyz %d %s, want 200 degraded", r.Status, r.Raw)
			}
			id, _ := in.register(t, "early@example.com")

			proxy.SetUp(true)
			// The stream exists once the service has set its events up again.
			ev := events.OrderCreated{EventID: "ev-late", OrderID: "o-late", UserID: id, TotalCents: 700, OccurredAt: time.Now().UTC(),
				Items: []events.Item{{ProductID: 1, Quantity: 1, PriceCents: 700}}}
			subject := events.Orders(in.Env["EVENTS_NAMESPACE"]).OrderCreated
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				err := events.Publish(context.Background(), jetStream(t), subject, ev.EventID, ev)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no stream 15 s after NATS came back: %v\n%s", err, in.Logs.String())
				}
			}
			waitPoints(t, in, id, 7)
		})
	}
}
