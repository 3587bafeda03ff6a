package replay

import (
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/stampede-shop/stampede/loadtest/report"
	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
)

// The naive shop's recovery verdict shows the back-off ladder behind it: a
// process started again just before the spike ends serves the cool-down.
func TestNaiveRecoveryVerdictShowsTheBackOffLadder(t *testing.T) {
	sc, err := scenario.Load("promo")
	if err != nil {
		t.Fatal(err)
	}
	from, to := sc.Window()
	// Services gone at these seconds into the spike, as the timeline's
	// restart counter and the supervisor's events record it.
	type stop struct {
		service string
		at      int
	}
	gone := func(recovery float64, stops ...stop) report.Profile {
		pr := report.Profile{Supervised: true, Headline: report.Headline{RecoveryS: recovery}, Timeline: make([]report.Point, secs(sc.Length()))}
		for i := range pr.Timeline {
			pr.Timeline[i].T = i
			for _, s := range stops {
				if i >= secs(from)+s.at {
					pr.Timeline[i].Restarts++
				}
			}
		}
		for _, s := range stops {
			pr.Events = append(pr.Events, stack.Event{Service: s.service, What: "killed"}, stack.Event{Service: s.service, What: "restarting"})
		}
		return pr
	}
	recovery := func(pr report.Profile) report.Verdict {
		for _, v := range judge(sc, Profile{Name: "naive"}, pr) {
			if strings.Contains(v.Claim, "still down 10 s after") {
				return v
			}
		}
		t.Fatal("no recovery verdict for the naive shop")
		return report.Verdict{}
	}
	v := recovery(gone(-1, stop{"order", 11}, stop{"order", 31}, stop{"order", 60}))
	want := "recovery not within the run; gone 11 s (order, back-off 10s), 31 s (order, back-off 20s), 60 s (order, back-off 40s) into the spike, which lasted " +
		strconv.Itoa(secs(to-from)) + " s"
	if !v.Held || v.Seen != want {
		t.Errorf("away past the end: held %v, %q; want held, %q", v.Held, v.Seen, want)
	}
	// Each service has its own ladder.
	if v := recovery(gone(8, stop{"order", 29}, stop{"user", 40}, stop{"order", 67})); v.Held ||
		!strings.Contains(v.Seen, "recovery 8 s; gone 29 s (order, back-off 10s), 40 s (user, back-off 10s), 67 s (order, back-off 20s) into the spike") {
		t.Errorf("started again before the end, back after 8 s: held %v, %q", v.Held, v.Seen)
	}
	if v := recovery(report.Profile{Headline: report.Headline{RecoveryS: -1}}); v.Seen != "recovery not within the run" {
		t.Errorf("no restarts: %q", v.Seen)
	}
}

// held judges a run of profile in sc: each claim, and whether it held.
func held(sc *scenario.Scenario, profile string, pr report.Profile) map[string]bool {
	got := map[string]bool{}
	for _, v := range judge(sc, Profile{Name: profile}, pr) {
		got[v.Claim] = v.Held
	}
	return got
}

// The claims every resilient run is judged on, whatever the scenario.
const (
	restarts = "zero restarts"
	back     = "back within 5 s after the spike or the fault ends"
	noEvents = "zero oversold, zero missing orders, zero lost or duplicated events"
)

// nats-outage and redis-outage judge what each profile does with a
// dependency no shopper's request needs: the naive shop is killed by its
// probes (and, without NATS, loses the events it published after the
// commit); the resilient one serves through it. db-latency: the naive shop
// is killed by its probes too; the resilient one leaves nobody hanging.
// db-outage: the resilient shop serves every read of an order placed
// before, and stale copies of what was read before, and refuses the rest
// fast. slow-dependency: the naive order service is killed as in the
// incident; the resilient shop serves through it.
func TestDependencyOutageVerdicts(t *testing.T) {
	const (
		lost    = "events published after the commit are lost while NATS is down"
		serves  = "the shop serves through the outage: goodput ≥ 90 % of the traffic offered"
		answers = "no request hangs on the slow database: every one answered within the shoppers' patience"
		orders  = "orders placed before the outage are served to their owners"
		stale   = "products and searches read before the outage are served stale"
		fast    = claimOutageRefusedFast + ", timed in the services"
		slowly  = "the shop serves through the slowness: goodput ≥ 90 % of the traffic offered"
	)
	killedBy := func(dep string) string { return "liveness probes that ask " + dep + " get the services killed" }
	serving := report.Profile{Supervised: true, Headline: report.Headline{OfferedRPS: 228, GoodputRPS: 227, RecoveryS: 0}}
	tests := []struct {
		name, scenario, profile string
		pr                      report.Profile
		want                    map[string]bool
	}{
		{"naive, as in the incident", "nats-outage", "naive",
			report.Profile{Supervised: true, Headline: report.Headline{Restarts: 3, EventsLost: 491}},
			map[string]bool{killedBy("NATS"): true, lost: true}},
		{"naive, unharmed", "nats-outage", "naive",
			report.Profile{Supervised: true, Headline: report.Headline{}},
			map[string]bool{killedBy("NATS"): false, lost: false}},
		{"naive, not supervised (-target)", "nats-outage", "naive",
			report.Profile{Headline: report.Headline{EventsLost: 12}},
			map[string]bool{lost: true}},
		{"naive without Redis", "redis-outage", "naive",
			report.Profile{Supervised: true, Headline: report.Headline{Restarts: 3}},
			map[string]bool{killedBy("Redis"): true}},
		{"resilient, serving", "nats-outage", "resilient", serving,
			map[string]bool{serves: true, restarts: true, back: true, noEvents: true}},
		{"resilient, refusing orders and losing events", "nats-outage", "resilient",
			report.Profile{Supervised: true, Broken: []string{"40 order.created events lost"},
				Headline: report.Headline{OfferedRPS: 228, GoodputRPS: 150, RecoveryS: 0, EventsLost: 40}},
			map[string]bool{serves: false, restarts: true, back: true, noEvents: false}},
		{"naive with a slow Postgres", "db-latency", "naive",
			report.Profile{Supervised: true, Headline: report.Headline{Restarts: 3, ErrorRate: map[string]float64{"timeout": 12.1}}},
			map[string]bool{"liveness probes that ask the slowed Postgres get the services killed": true}},
		{"resilient with a slow Postgres, answering", "db-latency", "resilient",
			report.Profile{Supervised: true, Headline: report.Headline{OfferedRPS: 289, GoodputRPS: 166, RecoveryS: 1,
				ErrorRate: map[string]float64{"shed": 14.6, "unavailable": 25.6, "late": 2.3}}},
			map[string]bool{answers: true, restarts: true, back: true, noEvents: true}},
		{"resilient with a slow Postgres, hanging", "db-latency", "resilient",
			report.Profile{Supervised: true, Headline: report.Headline{RecoveryS: 1, ErrorRate: map[string]float64{"timeout": 0.4}}},
			map[string]bool{answers: false, restarts: true, back: true, noEvents: true}},
		{"resilient without Postgres, serving what it kept", "db-outage", "resilient",
			report.Profile{Supervised: true, Headline: report.Headline{OrderReads: 2300, OrderReadsServed: 2300, Stale: 3901,
				P99RefusalService: 2.5, RecoveryS: 1}},
			map[string]bool{orders: true, stale: true, fast: true, restarts: true, back: true, noEvents: true}},
		{"resilient without Postgres, one order read refused", "db-outage", "resilient",
			report.Profile{Supervised: true, Headline: report.Headline{OrderReads: 2300, OrderReadsServed: 2299, Stale: 3901,
				P99RefusalService: 25, RecoveryS: 1}},
			map[string]bool{orders: false, stale: true, fast: false, restarts: true, back: true, noEvents: true}},
		{"resilient without Postgres, nothing kept", "db-outage", "resilient",
			report.Profile{Supervised: true, Headline: report.Headline{P99RefusalService: 2.5, RecoveryS: 1}},
			map[string]bool{orders: false, stale: false, fast: true, restarts: true, back: true, noEvents: true}},
		{"naive with a slow user service", "slow-dependency", "naive",
			report.Profile{Supervised: true, Headline: report.Headline{Restarts: 3}},
			map[string]bool{"a slow user service gets the order service killed: orders hold the pool while they wait on it": true}},
		{"resilient with a slow user service, serving", "slow-dependency", "resilient", serving,
			map[string]bool{slowly: true, restarts: true, back: true, noEvents: true}},
		{"resilient with a slow user service, waiting on it", "slow-dependency", "resilient",
			report.Profile{Supervised: true, Headline: report.Headline{OfferedRPS: 430, GoodputRPS: 185, RecoveryS: 0}},
			map[string]bool{slowly: false, restarts: true, back: true, noEvents: true}},
		{"resilient without Redis, serving", "redis-outage", "resilient", serving,
			map[string]bool{serves: true, restarts: true, back: true, noEvents: true}},
		{"resilient without Redis, shedding", "redis-outage", "resilient",
			report.Profile{Supervised: true, Headline: report.Headline{OfferedRPS: 444, GoodputRPS: 4, RecoveryS: 0}},
			map[string]bool{serves: false, restarts: true, back: true, noEvents: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := scenario.Load(tt.scenario)
			if err != nil {
				t.Fatal(err)
			}
			if got := held(sc, tt.profile, tt.pr); !maps.Equal(got, tt.want) {
				t.Errorf("claims and whether they held:\n got  %v\n want %v", got, tt.want)
			}
		})
	}
}

// A verdict's measure reads as English: one restart, not "1 restarts".
func TestCountSaysOneInTheSingular(t *testing.T) {
	for _, tc := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "restart", "0 restarts"},
		{1, "restart", "1 restart"},
		{3, "restart", "3 restarts"},
		{1, "stale answer", "1 stale answer"},
		{45, "stale answer", "45 stale answers"},
	} {
		if got := count(tc.n, tc.noun); got != tc.want {
			t.Errorf("count(%d, %q) = %q, want %q", tc.n, tc.noun, got, tc.want)
		}
	}
}

// The promotion's claims, held and not, for both profiles: the issue's
// numbers are the thresholds.
func TestPromoVerdicts(t *testing.T) {
	const (
		falls  = "goodput during the spike falls below 20 % of capacity"
		killed = "liveness kills and restarts happen"
		down   = "the order API is still down 10 s after the spike ends"
		holds  = "goodput during the spike at or above 90 % of capacity"
		tail   = "p99 of successful requests ≤ 200 ms"
		fast   = claimExcessRefusedFast + ", timed in the services"
	)
	tests := []struct {
		name, profile string
		pr            report.Profile
		want          map[string]bool
	}{
		{"naive, as in the incident", "naive",
			report.Profile{Supervised: true, Headline: report.Headline{GoodputPct: 9, Restarts: 3, RecoveryS: -1}},
			map[string]bool{falls: true, killed: true, down: true}},
		{"naive, holding up", "naive",
			report.Profile{Supervised: true, Headline: report.Headline{GoodputPct: 20, RecoveryS: 8}},
			map[string]bool{falls: false, killed: false, down: false}},
		{"naive, not supervised (-target)", "naive",
			report.Profile{Headline: report.Headline{GoodputPct: 9, RecoveryS: -1}},
			map[string]bool{falls: true, down: true}},
		{"resilient, holding", "resilient",
			report.Profile{Supervised: true, Headline: report.Headline{GoodputPct: 90, P99Good: 200, P99RefusalService: 10}},
			map[string]bool{holds: true, tail: true, fast: true, restarts: true, back: true, noEvents: true}},
		{"resilient, overloaded", "resilient",
			report.Profile{Supervised: true, Broken: []string{"2 units oversold"},
				Headline: report.Headline{GoodputPct: 89, P99Good: 201, P99RefusalService: 10.1, Restarts: 1, RecoveryS: 6, Oversold: 2}},
			map[string]bool{holds: false, tail: false, fast: false, restarts: false, back: false, noEvents: false}},
		{"an ablation", "naive+shedding",
			report.Profile{Supervised: true, Headline: report.Headline{GoodputPct: 77}},
			map[string]bool{}},
	}
	sc, err := scenario.Load("promo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := held(sc, tt.profile, tt.pr); !maps.Equal(got, tt.want) {
				t.Fatalf("verdicts %v, want %v", got, tt.want)
			}
		})
	}
}

// The refusals' verdict names what each kind of refusal took, the slowest
// first, so that a p99 over 10 ms says whether the door or a pool's wait
// made it.
func TestRefusalVerdictNamesTheCodes(t *testing.T) {
	sc, err := scenario.Load("promo")
	if err != nil {
		t.Fatal(err)
	}
	pr := report.Profile{Supervised: true, Headline: report.Headline{P99RefusalService: 250,
		RefusalsServiceByCode: map[string]report.Refusals{"overloaded": {Count: 40512, P99: 0.5}, "pool_timeout": {Count: 3, P99: 250}, "": {Count: 1, P99: 0.5}}}}
	for _, v := range judge(sc, Profile{Name: "resilient"}, pr) {
		if v.Claim != claimExcessRefusedFast+", timed in the services" {
			continue
		}
		if v.Held {
			t.Error("a p99 of 250 ms held as fast")
		}
		if want := "≤ 250 ms in the services (3 pool_timeout ≤ 250 ms, 1 without a code ≤ 0.5 ms, 40512 overloaded ≤ 0.5 ms);"; !strings.HasPrefix(v.Seen, want) {
			t.Errorf("seen %q, want it to begin %q", v.Seen, want)
		}
		return
	}
	t.Fatal("no verdict on the refusals")
}
