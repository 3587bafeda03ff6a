package scenario

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBuiltinScenariosParse(t *testing.T) {
	names := Builtin()
	for _, want := range []string{"promo", "db-outage", "nats-outage", "redis-outage", "slow-dependency"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Fatalf("built-in %q missing from %v", want, names)
		}
	}
	for _, n := range names {
		s, err := Load(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if s.Name != n {
			t.Fatalf("%s: the file names itself %q", n, s.Name)
		}
		from, to := s.Window()
		if to <= from || to > s.Length() {
			t.Fatalf("%s: window %v–%v outside 0–%v", n, from, to, s.Length())
		}
	}
	promo, _ := Load("promo")
	spike, _ := promo.At(30 * time.Second)
	warm, _ := promo.At(0)
	if spike.Name != "spike" || spike.Rate != 10*warm.Rate {
		t.Fatalf("promo: the spike is %s at %v×, warm-up %v×; want a tenfold spike", spike.Name, spike.Rate, warm.Rate)
	}
	if promo.MixOf(spike)[OrderHot] <= promo.MixOf(warm)[OrderHot] {
		t.Fatal("promo: the spike is not concentrated on the hot SKU")
	}
}

func TestBadScenariosAreRefusedWithTheReason(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown field", "name: x\nfocus: a\nphases: [{name: a, duration: 1s, rate: 1, mix: {search: 1}}]\nspeed: 3\n", "unknown field"},
		{"unknown kind", "name: x\nfocus: a\nphases: [{name: a, duration: 1s, rate: 1, mix: {checkout: 1}}]\n", `unknown request kind "checkout"`},
		{"no mix", "name: x\nfocus: a\nphases: [{name: a, duration: 1s, rate: 1}]\n", "no mix"},
		{"zero rate", "name: x\nfocus: a\nmix: {search: 1}\nphases: [{name: a, duration: 1s, rate: 0}]\n", "positive rate"},
		{"fault past the end", "name: x\nmix: {search: 1}\nphases: [{name: a, duration: 10s, rate: 1}]\nfaults: [{kind: postgres_down, at: 5s, for: 10s}]\n", "within the scenario"},
		{"unknown fault", "name: x\nmix: {search: 1}\nphases: [{name: a, duration: 10s, rate: 1}]\nfaults: [{kind: meteor, at: 1s, for: 1s}]\n", "unknown kind; valid: postgres_down, slow_postgres, nats_down, redis_down, slow_users"},
		{"slow without latency", "name: x\nmix: {search: 1}\nphases: [{name: a, duration: 10s, rate: 1}]\nfaults: [{kind: slow_users, at: 1s, for: 1s}]\n", "needs a latency"},
		{"slow Postgres without latency", "name: x\nmix: {search: 1}\nphases: [{name: a, duration: 10s, rate: 1}]\nfaults: [{kind: slow_postgres, at: 1s, for: 1s}]\n", "needs a latency"},
		{"nothing to judge", "name: x\nmix: {search: 1}\nphases: [{name: a, duration: 10s, rate: 1}]\n", "focus phase or a fault"},
		{"bad duration", "name: x\nfocus: a\nmix: {search: 1}\nphases: [{name: a, duration: soon, rate: 1}]\n", "duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := Load("no-such-scenario"); err == nil || !strings.Contains(err.Error(), "promo") {
		t.Fatalf("unknown scenario: %v, want the list of built-in ones", err)
	}
}

func TestScaledKeepsTheShape(t *testing.T) {
	s, _ := Load("db-outage")
	q := s.Scaled(0.1)
	if q.Length() != s.Length()/10 {
		t.Fatalf("length %v, want %v", q.Length(), s.Length()/10)
	}
	if from, to := q.Window(); from != 1500*time.Millisecond || to != 4500*time.Millisecond {
		t.Fatalf("window %v–%v", from, to)
	}
	if s.Phases[0].Duration.Duration != 15*time.Second {
		t.Fatal("Scaled changed the original")
	}
}

// The replay puts Toxiproxy only in the paths a scenario cuts or slows.
func TestInjectsNamesTheScenariosFaults(t *testing.T) {
	for name, want := range map[string][]FaultKind{
		"promo":           nil,
		"db-outage":       {PostgresDown},
		"db-latency":      {SlowPostgres},
		"nats-outage":     {NATSDown},
		"redis-outage":    {RedisDown},
		"slow-dependency": {SlowUsers},
	} {
		s, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range FaultKinds {
			if got := s.Injects(k); got != slices.Contains(want, k) {
				t.Errorf("%s: Injects(%s) = %v, want %v", name, k, got, !got)
			}
		}
	}
}

func TestSendsNamesTheScenariosKinds(t *testing.T) {
	for name, want := range map[string]bool{"promo": true, "db-outage": false, "nats-outage": false, "redis-outage": true, "slow-dependency": false} {
		s, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Sends(OrderHot); got != want {
			t.Errorf("%s: Sends(%s) = %v, want %v", name, OrderHot, got, want)
		}
		if !s.Sends(Search) {
			t.Errorf("%s sends no searches", name)
		}
	}
}
