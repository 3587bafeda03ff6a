package replay

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/loadtest/load"
	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

// -target: the replay drives a shop that runs already. Here the shop is one
// the test starts, seen only through its URLs, as the compose one would be:
// each profile's fixes are switched through the admin API, and the
// invariants are checked in its databases.
func TestTargetMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bins := services(t)
	native, err := stack.StartNative(ctx, testDeps(), bins, stack.Options{Fixes: "resilient", Products: 500, LogDir: t.TempDir(), Probe: stack.KubeletProbe})
	if err != nil {
		t.Fatal(err)
	}
	defer native.Close()
	remote := remoteOf(native)
	// The hot SKU sold out, as an earlier profile leaves it on a running
	// shop: each profile's report must say its spike was no flash sale.
	buyer := &load.Shop{Client: load.NewClient(), Targets: load.Targets{User: native.API("user"), Search: native.API("search"), Order: native.API("order")}}
	if err := buyer.Register(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		left, err := remote.HotStock(ctx)
		if err != nil || left == 0 || i == 20 {
			if err != nil || left != 0 {
				t.Fatalf("hot SKU: %d left after %d orders, %v", left, i, err)
			}
			break
		}
		body := fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":%d}]}`, catalog.HotProductID, min(left, 10))
		if r := postOrder(ctx, t, native.API("order"), buyer.Shoppers[0].Token, fmt.Sprintf("sell-out-%d", i), body); r.Status != http.StatusCreated {
			t.Fatalf("order %d for the hot SKU: %d %s", i, r.Status, r.Raw)
		}
	}
	promo, _ := scenario.Load("promo")
	naive, _ := ParseProfile("naive")
	ablation, _ := ParseProfile("resilient-shedding")
	s, err := Run(ctx, Options{Scenario: promo.Scaled(0.05), Profiles: []Profile{ablation, naive}, Capacity: 20,
		Products: 500, Shoppers: 4, Out: t.TempDir(), Target: remote})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Profiles {
		if p.Supervised || p.Restarts != nil || len(p.Broken) > 0 || p.Invariants.Acknowledged == 0 {
			t.Fatalf("%s: supervised %v, restarts %v, broken %v, invariants %+v", p.Name, p.Supervised, p.Restarts, p.Broken, p.Invariants)
		}
		if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "hot SKU was sold out") {
			t.Errorf("%s: notes %q; want one that the hot SKU was sold out before it began", p.Name, p.Notes)
		}
	}
	// The last profile's fixes are in force on every service.
	for _, svc := range stack.Services {
		r := testkit.Do(t, "GET", native.Admin(svc)+"/admin/fixes", stack.AdminToken, nil)
		if r.Status != 200 || !strings.Contains(r.Raw, `"hot_row":false`) || !strings.Contains(r.Raw, `"shedding":false`) {
			t.Fatalf("%s after the naive profile: %d %s", svc, r.Status, r.Raw)
		}
	}
	// A fault that cannot be injected fails the run, or its verdicts would
	// judge a run without it: here no Toxiproxy was given to cut Postgres.
	outage, _ := scenario.Load("db-outage")
	resilient, _ := ParseProfile("resilient")
	_, err = Run(ctx, Options{Scenario: outage.Scaled(0.05), Profiles: []Profile{resilient}, Capacity: 20,
		Products: 500, Shoppers: 4, Out: t.TempDir(), Target: remote})
	if err == nil || !strings.Contains(err.Error(), "postgres_down (Postgres unreachable)") || !strings.Contains(err.Error(), "-toxiproxy") {
		t.Fatalf("db-outage without a Toxiproxy: %v; want the run failed for its fault", err)
	}
}

// remoteOf drives a shop the test started as the replay drives a running one.
func remoteOf(native *stack.Native) *stack.Remote {
	remote := &stack.Remote{APIs: map[string]string{}, Admins: map[string]string{}, Databases: map[string]string{}, AdminToken: stack.AdminToken}
	for _, svc := range stack.Services {
		remote.APIs[svc], remote.Admins[svc], remote.Databases[svc] = native.API(svc), native.Admin(svc), native.Database(svc)
	}
	return remote
}

// On a running shop the calibration, too, measures the capacity without the
// CPU cap: it switches the cap off through the admin API, and the shop gets
// its own target back for the profiles, and when the run ends, however it
// ends (here, interrupted during the calibration).
func TestTargetModeCalibratesWithoutTheCPUCap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	native, err := stack.StartNative(ctx, testDeps(), services(t), stack.Options{Fixes: "resilient", Products: 500, LogDir: t.TempDir(),
		Probe: stack.KubeletProbe, Env: map[string]string{cpuWaitEnv: "7ms"}})
	if err != nil {
		t.Fatal(err)
	}
	defer native.Close()
	remote := remoteOf(native)
	cpuWait := func(when, want string) {
		t.Helper()
		for _, svc := range stack.Services {
			r := testkit.Do(t, "GET", native.Admin(svc)+"/admin/shedding", stack.AdminToken, nil)
			if got, _ := r.Body["cpu_wait"].(string); r.Status != 200 || got != want {
				t.Fatalf("%s, %s: %d %s; want cpu_wait %q", when, svc, r.Status, r.Raw, want)
			}
		}
	}
	promo, _ := scenario.Load("promo")
	o := Options{Scenario: promo, Products: 500, Shoppers: 2, Target: remote}
	o.defaults()
	resilient, _ := ParseProfile("resilient")
	for _, step := range []struct {
		p    Profile
		want string
	}{{calibrationProfile(), "off"}, {resilient, "7ms"}, {calibrationProfile(), "off"}} {
		if _, _, err := prepare(ctx, o, step.p, nil); err != nil {
			t.Fatal(err)
		}
		cpuWait("prepared for "+step.p.Name, step.want)
	}
	if err := remote.SetCPUWait(ctx, ""); err != nil {
		t.Fatal(err)
	}
	cpuWait("put back", "7ms")

	// A run interrupted after its calibration's first step.
	interrupted, stop := context.WithCancel(ctx)
	var during string
	o.Target, o.Capacity = remoteOf(native), 0
	o.Progress = lineWriter(func(line string) {
		if during == "" && strings.Contains(line, "/s │") {
			r := testkit.Do(t, "GET", native.Admin("order")+"/admin/shedding", stack.AdminToken, nil)
			during, _ = r.Body["cpu_wait"].(string)
			stop()
		}
	})
	if _, err := Run(interrupted, o); err == nil || during != "off" {
		t.Fatalf("a run interrupted during its calibration: error %v, the order service's CPU wait %q during it; want an error, and off", err, during)
	}
	cpuWait("after a run interrupted during the calibration", "7ms")

	odd := Profile{Name: "odd", Fixes: "resilient", Env: map[string]string{"DB_MAX_OPEN_CONNS": "5"}}
	if _, _, err := prepare(ctx, o, odd, nil); err == nil || !strings.Contains(err.Error(), "DB_MAX_OPEN_CONNS") {
		t.Fatalf("a profile setting DB_MAX_OPEN_CONNS on a running shop: %v, want an error naming it", err)
	}
}

// lineWriter calls each with every line written to it (the replay's
// progress writes whole lines).
type lineWriter func(line string)

func (each lineWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSuffix(string(p), "\n"), "\n") {
		each(line)
	}
	return len(p), nil
}
