package stack

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// childEnv makes this test binary a stand-in for a service, run by the
// supervisor under test: "ignore-sigterm" lives on through SIGTERM (a
// process stuck in its work), "exit-on-sigterm" ends on it, as a service
// that drains and stops.
const childEnv = "STACK_TEST_CHILD"

// readyEnv is where a child says it is running as what it stands in for.
// Until it has, the probes pass and are not counted: a race-instrumented
// test binary can take longer to start than three fast probes take to fail,
// and a SIGTERM sent before it ignores the signal ends it (a flake seen
// once in CI on a busy machine).
const readyEnv = "STACK_TEST_READY_URL"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "ignore-sigterm":
		signal.Ignore(syscall.SIGTERM)
		childReady()
		time.Sleep(time.Hour)
	case "exit-on-sigterm": // SIGTERM's default: the process ends
		childReady()
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

func childReady() {
	resp, err := http.Get(os.Getenv(readyEnv))
	if err != nil {
		os.Exit(2) // the test sees an exit it did not expect
	}
	resp.Body.Close()
}

// fastProbe is the kubelet's supervision, quickened for a test.
var fastProbe = Probe{Path: "/livez", InitialDelay: 10 * time.Millisecond, Period: 20 * time.Millisecond,
	Timeout: time.Second, FailureThreshold: 3, Grace: time.Second,
	Backoff: func(n int) time.Duration { return 30 * time.Millisecond }}

// supervised runs a child under the supervisor, the status of its n-th
// liveness probe (counting from 1, once the first child is running: see
// readyEnv) given by answer, until the child has been
// started 1 + restarts times and a probe number probes has come in; then it
// stops the supervisor and returns the events it told of.
func supervised(t *testing.T, child string, answer func(n int, r *http.Request) int, restarts int, probes int32) []Event {
	t.Helper()
	var probed atomic.Int32
	var ready atomic.Bool
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/ready":
			ready.Store(true)
		case ready.Load():
			w.WriteHeader(answer(int(probed.Add(1)), r))
		}
	}))
	defer live.Close()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []Event
	var started atomic.Int32
	p := &Process{Name: "svc", Bin: bin, Env: append(os.Environ(), childEnv+"="+child, readyEnv+"="+live.URL+"/ready"),
		API: live.URL, Log: io.Discard, Probe: fastProbe, OnEvent: func(e Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
			if e.What == "started" {
				started.Add(1)
			}
		}}
	p.Start(context.Background())
	deadline := time.After(30 * time.Second) // a bound on a hang, not a measure
	for int(started.Load()) < 1+restarts || probed.Load() < probes {
		select {
		case <-deadline:
			p.Stop()
			t.Fatalf("after 30 s: %d starts, %d probes; want %d and %d", started.Load(), probed.Load(), 1+restarts, probes)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if got := p.Restarts(); got != restarts {
		t.Errorf("restart counter %d, want %d", got, restarts)
	}
	p.Stop()
	if p.Up() {
		t.Error("Stop returned with the process up")
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(events)
}

// what lists the events' kinds, with the details that tell a kill from another.
func what(events []Event) []string {
	var out []string
	for _, e := range events {
		switch e.What {
		case "exited", "restarting":
			out = append(out, e.What+": "+e.Detail)
		default:
			out = append(out, e.What)
		}
	}
	return out
}

func failing(int, *http.Request) int { return http.StatusServiceUnavailable }

// Three failed probes in a row, and the kubelet's kill: SIGTERM, and SIGKILL
// once the grace period is over for a process that ignores it; then a
// restart after the back-off, counted.
func TestALivenessFailureKillsAndRestarts(t *testing.T) {
	for _, tc := range []struct{ child, exit string }{
		{"exit-on-sigterm", "exited: killed: exited on SIGTERM"},
		{"ignore-sigterm", "exited: killed: SIGKILL after the grace period"},
	} {
		t.Run(tc.child, func(t *testing.T) {
			events := what(supervised(t, tc.child, failing, 1, 0))
			want := []string{"started", "liveness failed", "liveness failed", "liveness failed", "killed"}
			if len(events) < len(want)+3 || !slices.Equal(events[:len(want)], want) ||
				!strings.HasPrefix(events[len(want)], tc.exit) || events[len(want)+1] != "restarting: restart 1 after 30ms" ||
				events[len(want)+2] != "started" {
				t.Fatalf("events %q;\nwant %q, then %q…, a restart after the back-off, and a start", events, want, tc.exit)
			}
		})
	}
}

// Failures must come in a row: a probe that passes between them starts the
// count again, and the process lives.
func TestLivenessFailuresCountInARow(t *testing.T) {
	twoOfThree := func(n int, _ *http.Request) int { // fail, fail, pass, …
		if n%3 == 0 {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	all := supervised(t, "exit-on-sigterm", twoOfThree, 0, 12)
	events := what(all)
	if slices.Contains(events, "killed") || events[0] != "started" {
		t.Fatalf("events %+v; want the process started and never killed", all)
	}
	if n := strings.Count(strings.Join(events, "\n"), "liveness failed"); n < 8 {
		t.Fatalf("%d failed probes heard; want the two of every three of 12 and more", n)
	}
}

// The kubelet's CrashLoopBackOff: 10 s, doubling, at most five minutes.
func TestKubeletBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second,
		5: 160 * time.Second, 6: 5 * time.Minute, 20: 5 * time.Minute} {
		if got := KubeletProbe.Backoff(n); got != want {
			t.Errorf("back-off before restart %d: %v, want %v", n, got, want)
		}
	}
}

// A probe cut short because the supervisor is stopping is not the process's
// failure: after two failed probes, a third in flight when the run ends
// does not get the process "killed" for its liveness (it is stopped).
func TestAStopDuringAProbeIsNotAKill(t *testing.T) {
	twoThenHang := func(n int, r *http.Request) int {
		if n >= 3 {
			<-r.Context().Done() // until the supervisor gives up on it
		}
		return http.StatusServiceUnavailable
	}
	events := what(supervised(t, "exit-on-sigterm", twoThenHang, 0, 3))
	if want := []string{"started", "liveness failed", "liveness failed"}; !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
}
