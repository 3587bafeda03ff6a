package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/health"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/server"
	"github.com/stampede-shop/stampede/pkg/telemetry"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

type harness struct {
	api, admin string
	release    chan struct{} // closes to let /slow finish
	entered    chan struct{} // /slow has started
	checks     *health.Checker
	errc       chan error
	cancel     context.CancelFunc
}

// start runs a Server with a /slow route; startup blocks until unblock closes.
func start(t *testing.T, fixesValue string, unblock <-chan struct{}) *harness {
	t.Helper()
	h := &harness{api: testkit.FreeAddr(t), admin: testkit.FreeAddr(t), release: make(chan struct{}), entered: make(chan struct{}, 1), errc: make(chan error, 1)}
	b := board(t, fixesValue)
	h.checks = health.New(b, time.Second)
	cfg := config.Common{Service: "test", HTTPAddr: h.api, AdminAddr: h.admin, AdminToken: config.NewSecret("tok"),
		Requests: config.Requests{Timeout: 5 * time.Second, BodyLimit: 1 << 10, ShutdownGrace: 5 * time.Second, DrainDelay: 300 * time.Millisecond}}
	srv := server.New(server.Options{Config: cfg, Log: quiet, Board: b, Registry: telemetry.NewRegistry(), Health: h.checks})
	srv.API().GET("/slow", func(c *gin.Context) {
		h.entered <- struct{}{}
		<-h.release
		c.String(200, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	t.Cleanup(cancel)
	go func() { h.errc <- srv.Run(ctx, func(context.Context) error { <-unblock; return nil }) }()
	waitFor(t, "http://"+h.api+"/livez", 200)
	return h
}

// awaitSlow waits for /slow to be entered. The ten seconds only turn a
// request that never arrives into a failure instead of a hung test.
func (h *harness) awaitSlow(t *testing.T) {
	t.Helper()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("/slow was never entered")
	}
}

// eventually polls ok until it holds; ten seconds is patience for a loaded
// CI machine, not a speed requirement.
func eventually(t *testing.T, ok func() bool, failure string, args ...any) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf(failure, args...)
		}
	}
}

// waitFor polls url until it answers status.
func waitFor(t *testing.T, url string, status int) {
	t.Helper()
	eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == status
	}, "%s never answered %d", url, status)
}

// waitStarted waits for start-up to be done.
func waitStarted(t *testing.T, checks *health.Checker) {
	t.Helper()
	eventually(t, checks.Started, "start-up never finished")
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStartupGate(t *testing.T) {
	unblock := make(chan struct{})
	h := start(t, "resilient", unblock)
	if code, body := get(t, "http://"+h.api+"/slow"); code != 503 || !strings.Contains(body, `"code":"starting"`) {
		t.Fatalf("before start-up: got %d %s, want 503 starting", code, body)
	}
	if code, body := get(t, "http://"+h.api+"/readyz"); code != 503 || !strings.Contains(body, `"status":"starting"`) {
		t.Fatalf("readyz before start-up: got %d %s", code, body)
	}
	close(unblock)
	waitFor(t, "http://"+h.api+"/readyz", 200)
	if code, body := get(t, "http://"+h.api+"/nope"); code != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Fatalf("unknown route: %d %s", code, body)
	}
}

func TestAdminListener(t *testing.T) {
	unblock := make(chan struct{})
	close(unblock)
	h := start(t, "resilient", unblock)
	if code, body := get(t, "http://"+h.admin+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics: %d", code)
	}
	if code, body := get(t, "http://"+h.admin+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/: %d", code)
	}
	if code, _ := get(t, "http://"+h.admin+"/admin/fixes"); code != 401 {
		t.Fatalf("/admin/fixes without token: %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.admin+"/admin/fixes", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/admin/fixes with token: %v %v", resp, err)
	}
	resp.Body.Close()
}

// PUT /admin/shedding switches the shedder's CPU cap on a running service;
// what is not a duration or "off" is a 400 that changes nothing.
func TestAdminSwitchesTheCPUCap(t *testing.T) {
	unblock := make(chan struct{})
	close(unblock)
	h := start(t, "resilient", unblock)
	do := func(method, body, token string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+h.admin+"/admin/shedding", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do(http.MethodPut, `{"cpu_wait":"off"}`, ""); code != 401 {
		t.Fatalf("PUT without the token: %d, want 401", code)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"cpu_wait":"7ms"}`, `{"cpu_wait":"7ms"}`},
		{`{"cpu_wait":"off"}`, `{"cpu_wait":"off"}`},
		{`{"cpu_wait":"20ms"}`, `{"cpu_wait":"20ms"}`},
	} {
		if code, body := do(http.MethodPut, tt.body, "tok"); code != 200 || body != tt.want {
			t.Fatalf("PUT %s: %d %s, want 200 %s", tt.body, code, body, tt.want)
		}
		if code, body := do(http.MethodGet, "", "tok"); code != 200 || body != tt.want {
			t.Fatalf("GET after PUT %s: %d %s", tt.body, code, body)
		}
	}
	for _, bad := range []string{`{"cpu_wait":"-5ms"}`, `{"cpu_wait":"soon"}`, `{}`, `{"cpu_wait":10}`} {
		if code, body := do(http.MethodPut, bad, "tok"); code != 400 || !strings.Contains(body, `"code":"invalid`) {
			t.Fatalf("PUT %s: %d %s, want a 400", bad, code, body)
		}
	}
	if _, body := do(http.MethodGet, "", "tok"); body != `{"cpu_wait":"20ms"}` {
		t.Fatalf("after the bad requests: %s, want the last good value", body)
	}
}

func TestGracefulShutdown(t *testing.T) {
	unblock := make(chan struct{})
	close(unblock)

	t.Run("fix on: in-flight request completes, readiness fails first", func(t *testing.T) {
		h := start(t, "resilient", unblock)
		waitFor(t, "http://"+h.api+"/readyz", 200)
		result := make(chan string, 1)
		go func() {
			resp, err := http.Get("http://" + h.api + "/slow")
			if err != nil {
				result <- "error: " + err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			result <- string(b)
		}()
		h.awaitSlow(t)
		h.cancel() // SIGTERM
		waitFor(t, "http://"+h.api+"/readyz", 503)
		close(h.release)
		if got := <-result; got != "done" {
			t.Fatalf("in-flight request: got %q, want it completed", got)
		}
		if err := <-h.errc; err != nil {
			t.Fatalf("Run: %v", err)
		}
	})

	t.Run("fix off: in-flight request is cut off", func(t *testing.T) {
		h := start(t, "naive", unblock)
		// Past the start-up gate first: before it, /slow is answered 503
		// "starting" and never entered.
		waitFor(t, "http://"+h.api+"/readyz", 200)
		result := make(chan error, 1)
		go func() {
			resp, err := http.Get("http://" + h.api + "/slow")
			if err == nil {
				resp.Body.Close()
			}
			result <- err
		}()
		h.awaitSlow(t)
		h.cancel()
		if err := <-h.errc; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if err := <-result; err == nil {
			t.Fatal("without the fix the request should have been cut off")
		}
		close(h.release)
	})
}

func TestStartupFailureStopsRun(t *testing.T) {
	h := &harness{api: testkit.FreeAddr(t), admin: testkit.FreeAddr(t)}
	b := board(t, "resilient")
	cfg := config.Common{Service: "test", HTTPAddr: h.api, AdminAddr: h.admin}
	srv := server.New(server.Options{Config: cfg, Log: quiet, Board: b, Registry: telemetry.NewRegistry(), Health: health.New(b, time.Second)})
	want := errors.New("postgres never came")
	err := srv.Run(context.Background(), func(context.Context) error { return want })
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want the start-up error", err)
	}
}

// The door the server puts in front of every route treats the services'
// calls to each other (/internal/) as critical: while the shedder's CPU cap
// refuses shoppers' requests, it refuses none of them.
func TestTheShopsOwnCallsAreCriticalAtTheDoor(t *testing.T) {
	sh := resilience.NewShedder(resilience.ShedSettings{CPUWait: time.Millisecond,
		CPUWaitSource: func() (time.Duration, uint64) { return 5 * time.Millisecond, 100 }}, nil) // goroutines always wait for a CPU
	srv := server.New(server.Options{Config: config.Common{Service: "test", Requests: config.Requests{Timeout: time.Second, BodyLimit: 1 << 10}},
		Log: quiet, Board: board(t, "resilient"), Registry: telemetry.NewRegistry(), Shedder: sh})
	serve := func(path string) (overloaded bool) {
		rec := httptest.NewRecorder()
		srv.API().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code == http.StatusServiceUnavailable && strings.Contains(rec.Body.String(), `"code":"overloaded"`)
	}
	// A request a millisecond until the cap comes down (it reads the wait every 100 ms).
	eventually(t, func() bool { serve("/v1/products"); time.Sleep(time.Millisecond); return sh.CPUCap() > 0 }, "the CPU cap never came down")
	for range 3 { // a request a window: the cap comes down to 0.9 × the rate served, 10/s at least
		time.Sleep(100 * time.Millisecond)
		serve("/v1/products")
	}
	refused := map[string]int{}
	for range 300 {
		for _, path := range []string{"/internal/v1/users/1", "/v1/products"} {
			if serve(path) {
				refused[path]++
			}
		}
	}
	if n := refused["/internal/v1/users/1"]; n != 0 {
		t.Errorf("under the CPU cap (%.0f/s), %d of 300 calls to /internal/ refused", sh.CPUCap(), n)
	}
	if n := refused["/v1/products"]; n == 0 {
		t.Errorf("under the CPU cap (%.0f/s), none of 300 shoppers' requests refused back to back", sh.CPUCap())
	}
}
