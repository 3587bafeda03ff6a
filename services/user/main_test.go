package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

const testSecret = "test-secret-test-secret-test-secret"

// instance is a user service running in-process on real Postgres, Redis and
// NATS, in a database, key prefix and stream namespace of its own.
type instance struct {
	api, admin  string
	env         map[string]string
	redisPrefix string
	logs        *syncBuffer
	stop        func() error // cancels run (SIGTERM) and returns its error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is the environment of a fresh instance; edit can change it.
func testEnv(t *testing.T) map[string]string {
	t.Helper()
	_, prefix := testkit.Redis(t)
	_, ns := testkit.NATS(t)
	return map[string]string{
		"DATABASE_URL":         testkit.Database(t),
		"REDIS_URL":            testkit.RedisURL(),
		"NATS_URL":             testkit.NATSURL(),
		"REDIS_KEY_PREFIX":     prefix,
		"EVENTS_NAMESPACE":     ns,
		"HTTP_ADDR":            "127.0.0.1:0", // the instance logs where it listens
		"ADMIN_ADDR":           "127.0.0.1:0",
		"JWT_SECRET":           testSecret,
		"ADMIN_TOKEN":          "admin-test-token",
		"BCRYPT_COST":          "4", // the minimum: tests measure behaviour, not hashing
		"SHUTDOWN_DRAIN_DELAY": "50ms",
		"LOG_LEVEL":            "debug",
	}
}

func startWith(t *testing.T, env map[string]string) *instance {
	t.Helper()
	in := &instance{env: env, redisPrefix: env["REDIS_KEY_PREFIX"], logs: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, testkit.Getenv(env), nil, in.logs, in.logs) }()
	var once sync.Once
	var runErr error
	in.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := in.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("service log:\n%s", in.logs.String())
		}
	})
	in.api, in.admin = listening(t, in.logs)
	return in
}

// listening reads the addresses from the service's "listening" log line.
func listening(t *testing.T, logs *syncBuffer) (api, admin string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var l struct{ Message, API, Admin string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Message == "listening" {
				return "http://" + l.API, "http://" + l.Admin
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the service never logged where it listens:\n%s", logs.String())
	return "", ""
}

// start runs an instance and waits until it is ready.
func start(t *testing.T) *instance {
	t.Helper()
	in := startWith(t, testEnv(t))
	in.waitStatus(t, "/readyz", http.StatusOK, 15*time.Second)
	return in
}

func (in *instance) waitStatus(t *testing.T, path string, status int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := 0
	for time.Now().Before(deadline) {
		if resp, err := http.Get(in.api + path); err == nil {
			resp.Body.Close()
			if last = resp.StatusCode; last == status {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still %d after %v, want %d\n%s", path, last, within, status, in.logs.String())
}

type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// errCode returns error.code of a JSON error body.
func (r response) errCode() string {
	e, _ := r.Body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (in *instance) do(t *testing.T, method, path, token, body string) response {
	t.Helper()
	return do(t, method, in.api+path, token, strings.NewReader(body))
}

func do(t *testing.T, method, url, token string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// register creates a user and returns its id and a session token.
func (in *instance) register(t *testing.T, email string) (id int64, token string) {
	t.Helper()
	r := in.do(t, "POST", "/v1/users", "", `{"email":"`+email+`","password":"correct horse battery","name":"Test"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("register %s: %d %s", email, r.Status, r.Raw)
	}
	r2 := in.do(t, "POST", "/v1/sessions", "", `{"email":"`+email+`","password":"correct horse battery"}`)
	if r2.Status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r2.Status, r2.Raw)
	}
	return int64(r.Body["id"].(float64)), r2.Body["token"].(string)
}
