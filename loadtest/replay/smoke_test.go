package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/loadtest/report"
	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

var (
	binsDir  string
	built    map[string]string
	buildErr error
	build    sync.Once
)

func TestMain(m *testing.M) {
	if err := testkit.KeepStreamStore(); err != nil { // the shops here create and delete streams too
		fmt.Fprintln(os.Stderr, "NATS with JetStream is required:", err)
		os.Exit(1)
	}
	code := m.Run()
	if binsDir != "" {
		os.RemoveAll(binsDir)
	}
	os.Exit(code)
}

// services builds the three services from this checkout, once for every
// test of the package.
func services(t *testing.T) map[string]string {
	t.Helper()
	build.Do(func() {
		if binsDir, buildErr = os.MkdirTemp("", "stampede-replay-test-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		built, buildErr = stack.Build(ctx, filepath.Join("..", ".."), binsDir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// The replay end to end, in seconds instead of minutes: the services built
// from this checkout, started as supervised child processes against the real
// Postgres, Redis and NATS, the promo scenario scaled to a tenth, both
// profiles, the invariants checked against the databases and the event
// consumers, and the report written. `make replay` is the same at full size.
func TestSmokeReplay(t *testing.T) {
	r := replayed(t, 5*time.Minute, "promo", 0.1, stack.Probe{}, "naive", "resilient")
	sc, s, out, progress := r.scenario, r.summary, r.out, &r.progress
	if err := report.Write(out, s); err != nil {
		t.Fatal(err)
	}

	from, to := sc.Window()
	if len(s.Profiles) != 2 || s.Window != [2]int{secs(from), secs(to)} {
		t.Fatalf("profiles %d, window %v; want the spike, %v to %v", len(s.Profiles), s.Window, from, to)
	}
	scheduled := 0.0 // the arrivals the phases ask for, retries not counted
	for _, ph := range sc.Phases {
		scheduled += ph.Rate * smokeCapacity * ph.Duration.Seconds()
	}
	for _, p := range s.Profiles {
		if len(p.Broken) > 0 {
			t.Errorf("%s broke invariants: %v", p.Name, p.Broken)
		}
		inv := p.Invariants
		if inv.Acknowledged == 0 || inv.Stored < inv.Acknowledged || inv.Missing != 0 || inv.OversoldUnits != 0 {
			t.Errorf("%s: invariants %+v", p.Name, inv)
		}
		if len(p.Timeline) < secs(sc.Length()) {
			t.Errorf("%s: %d seconds in the timeline, want the whole %v run", p.Name, len(p.Timeline), sc.Length())
		}
		sent := 0
		for _, pt := range p.Timeline {
			sent += pt.Offered
		}
		if float64(sent) < 0.95*scheduled {
			t.Errorf("%s: %d requests recorded, want at least the %.0f scheduled", p.Name, sent, scheduled)
		}
		if p.Headline.GoodputRPS <= 0 || p.Headline.OfferedRPS < 100 {
			t.Errorf("%s: headline %+v", p.Name, p.Headline)
		}
		// The machine's CPUs are read where Linux tells: the shop kept them busy.
		if h := p.Headline; runtime.GOOS == "linux" && !(h.CPUBusyPct > 0 && h.CPUBusyPct <= 100) {
			t.Errorf("%s: the CPUs %.1f %% busy", p.Name, h.CPUBusyPct)
		}
		if h := p.Headline; stack.ReadCPU().PSIs && !(h.CPUWaitingPct >= 0 && h.CPUWaitingPct <= 100) {
			t.Errorf("%s: some task waiting for a CPU %.1f %% of the time", p.Name, h.CPUWaitingPct)
		}
	}
	if v := s.Profiles[1].Verdicts; len(v) == 0 {
		t.Error("the resilient profile was not judged")
	}

	// The files agree with each other.
	var fromJSON report.Summary
	data, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if fromJSON.Profiles[1].Headline.GoodputRPS != s.Profiles[1].Headline.GoodputRPS {
		t.Fatal("summary.json differs from the run")
	}
	html, _ := os.ReadFile(filepath.Join(out, "report.html"))
	if !strings.Contains(string(html), `data-profile="resilient"`) {
		t.Fatal("report.html lacks the resilient row")
	}
	// The progress a user watches: every phase, the rate, the goodput.
	for _, want := range []string{"warm-up", "spike", "cool-down", "offered", "good", "p99", "checking invariants"} {
		if !strings.Contains(progress.String(), want) {
			t.Fatalf("progress lacks %q:\n%s", want, progress.String())
		}
	}
}

// smokeRun is a built-in scenario as replayed ran it.
type smokeRun struct {
	scenario *scenario.Scenario // as run: scaled
	summary  *report.Summary
	out      string // the report directory
	progress testkit.SyncBuffer
}

// smokeCapacity is the capacity the smoke runs assume, instead of
// calibrating: small, so that a shared CI machine serves it.
const smokeCapacity = 40

// replayed runs the built-in scenario name, its durations scaled, under
// each of profiles in turn, each on a shop of its own built from this
// checkout and supervised with probe (the zero value: the kubelet's), and
// fails the test with the progress if the run fails or outlasts timeout.
func replayed(t *testing.T, timeout time.Duration, name string, scale float64, probe stack.Probe, profiles ...string) *smokeRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sc, err := scenario.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	var ps []Profile
	for _, profile := range profiles {
		p, err := ParseProfile(profile)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	r := &smokeRun{scenario: sc.Scaled(scale), out: t.TempDir()}
	r.summary, err = Run(ctx, Options{Scenario: r.scenario, Profiles: ps, Capacity: smokeCapacity,
		Bins: services(t), Deps: testDeps(), Probe: probe,
		Products: 500, Shoppers: 6, Out: r.out, Progress: &r.progress})
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, r.progress.String())
	}
	return r
}

// postOrder places an order (body) on the order API at api as the shopper
// holding token, under the idempotency key.
func postOrder(ctx context.Context, t *testing.T, api, token, key, body string) testkit.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/orders", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}, "Idempotency-Key": {key}}
	return testkit.DoRequest(t, req)
}

// testDeps are the machine's Postgres, Redis and NATS, as testkit finds them.
func testDeps() stack.Deps {
	return stack.Deps{Postgres: testkit.PostgresServer(), Redis: testkit.RedisURL(), NATS: testkit.NATSURL()}
}
