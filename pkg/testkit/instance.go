package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// RunFunc is a service's run function (Mat Ryer's pattern): main calls it with
// the process's environment, tests with one of their own.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error

// Env returns the environment of a service instance of the test's own: a
// fresh database, Redis key prefix and JetStream namespace, ports chosen by
// the kernel, fast shutdown, debug logs, and the shedder's CPU cap off. The
// cap refuses work while the machine's CPUs are busy, and `go test ./...`
// runs other packages beside this one (the replay's, which load the
// machine on purpose): a test that expects a 201 must not depend on what
// else runs. The cap's own tests are in pkg/resilience.
func Env(t testing.TB) map[string]string {
	t.Helper()
	_, prefix := Redis(t)
	_, ns := NATS(t)
	return map[string]string{
		"DATABASE_URL":         Database(t),
		"REDIS_URL":            RedisURL(),
		"NATS_URL":             NATSURL(),
		"REDIS_KEY_PREFIX":     prefix,
		"EVENTS_NAMESPACE":     ns,
		"HTTP_ADDR":            "127.0.0.1:0", // the instance logs where it listens
		"ADMIN_ADDR":           "127.0.0.1:0",
		"ADMIN_TOKEN":          "admin-test-token",
		"SHUTDOWN_DRAIN_DELAY": "50ms",
		"LOG_LEVEL":            "debug",
		"SHED_TARGET_CPU_WAIT": "off",
	}
}

// Instance is a service running in-process.
type Instance struct {
	API, Admin string // base URLs
	Env        map[string]string
	Logs       *SyncBuffer
	stop       func() error
}

// Start runs a service in-process with env and waits until it listens. It is
// stopped (as by SIGTERM) when the test ends, and its log is printed if the
// test failed.
func Start(t testing.TB, run RunFunc, env map[string]string) *Instance {
	t.Helper()
	in := &Instance{Env: env, Logs: &SyncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, Getenv(env), nil, in.Logs, in.Logs) }()
	var once sync.Once
	var runErr error
	in.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := in.Stop(); err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("service log:\n%s", in.Logs.String())
		}
	})
	in.API, in.Admin = Listening(t, in.Logs)
	return in
}

// StartReady is Start, then waits for /readyz to answer 200.
func StartReady(t testing.TB, run RunFunc, env map[string]string) *Instance {
	t.Helper()
	in := Start(t, run, env)
	in.WaitStatus(t, "/readyz", http.StatusOK, 15*time.Second)
	return in
}

// Stop cancels run and returns its error.
func (in *Instance) Stop() error { return in.stop() }

// Listening reads the addresses from a service's "listening" log line.
func Listening(t testing.TB, logs *SyncBuffer) (api, admin string) {
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

// WaitStatus polls path until it answers status.
func (in *Instance) WaitStatus(t testing.TB, path string, status int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := 0
	for time.Now().Before(deadline) {
		if resp, err := http.Get(in.API + path); err == nil {
			resp.Body.Close()
			if last = resp.StatusCode; last == status {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still %d after %v, want %d\n%s", path, last, within, status, in.Logs.String())
}

// SweptTables returns the tables the instance's housekeeping sweeps, read off
// its db_swept_rows_total series on /metrics, sorted.
func (in *Instance) SweptTables(t testing.TB) []string {
	t.Helper()
	r := Do(t, "GET", in.Admin+"/metrics", "", nil)
	var tables []string
	for _, m := range sweptSeries.FindAllStringSubmatch(r.Raw, -1) {
		tables = append(tables, m[1])
	}
	slices.Sort(tables)
	return tables
}

var sweptSeries = regexp.MustCompile(`(?m)^db_swept_rows_total\{table="([^"]+)"\} `)

// Response is an HTTP answer with its JSON body decoded.
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// ErrCode returns error.code of a JSON error body.
func (r Response) ErrCode() string {
	e, _ := r.Body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// Do sends a request to the instance's API.
func (in *Instance) Do(t testing.TB, method, path, token, body string) Response {
	t.Helper()
	return Do(t, method, in.API+path, token, strings.NewReader(body))
}

// Do sends a request with an optional bearer token and decodes the answer.
func Do(t testing.TB, method, url, token string, body io.Reader) Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return DoRequest(t, req)
}

// DoRequest sends req as JSON and decodes the answer.
func DoRequest(t testing.TB, req *http.Request) Response {
	t.Helper()
	r, err := TryRequest(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return r
}

// TryRequest is DoRequest for a caller that handles "no answer" itself (a
// client that retries a dropped connection).
func TryRequest(req *http.Request) (Response, error) {
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := Response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r, nil
}

// UntilAnswered sends the request newReq makes as a well-behaved client does:
// "come back later" is a 503 (shed, pool timeout), the 409 that says an
// earlier attempt with the same Idempotency-Key is still being placed
// (request_in_progress: that attempt still runs, or answered 503 and could
// not release the key, which lapses after a lease), and no answer at all
// (the connection dropped under load). It waits, backing off with jitter — never
// in lockstep with the other clients, which would be a retry storm — and
// asks again, for at most a minute. newReq makes a fresh request each time
// (a body is read once); asking again must be safe.
func UntilAnswered(t testing.TB, newReq func() *http.Request) Response {
	t.Helper()
	wait := 20 * time.Millisecond
	for deadline := time.Now().Add(time.Minute); ; {
		req := newReq()
		r, err := TryRequest(req)
		if err == nil && !r.Later() || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("%s %s: no answer within a minute: %v", req.Method, req.URL, err)
			}
			return r
		}
		time.Sleep(wait/2 + rand.N(wait))
		wait = min(2*wait, time.Second)
	}
}

// Later reports whether r asks the client to come back later rather than
// answer it: a 503, or the 409 request_in_progress.
func (r Response) Later() bool {
	return r.Status == http.StatusServiceUnavailable ||
		r.Status == http.StatusConflict && r.ErrCode() == "request_in_progress"
}

// SyncBuffer is a bytes.Buffer safe for a service writing and a test reading.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
