// Package scenario reads the replay's scenario files: the traffic (phases of
// an open-model arrival rate, each with a mix of requests) and the faults
// injected while it runs.
//
// Rates are multiples of the shop's measured capacity, not requests per
// second, so that a scenario means the same thing on a laptop and on a big
// server: "rate: 2" is twice what this machine can serve within the latency
// objective. The built-in scenarios live next to this file as YAML.
package scenario

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Kind is one kind of request in the traffic mix.
type Kind string

// The request kinds, as a shopper's session makes them.
const (
	Search     Kind = "search"      // GET /v1/products?q=...
	Product    Kind = "product"     // GET /v1/products/{id}, mostly the flash-sale products
	Login      Kind = "login"       // POST /v1/sessions (a bcrypt comparison: expensive on purpose)
	OrderHot   Kind = "order_hot"   // POST /v1/orders for the promotion's hot SKU
	OrderOther Kind = "order_other" // POST /v1/orders for a product with plenty of stock
	ReadOrder  Kind = "read_order"  // GET /v1/orders/{id} of one of the shopper's own orders
)

// Kinds lists every kind in a fixed order (charts and tables use it).
var Kinds = []Kind{Search, Product, Login, OrderHot, OrderOther, ReadOrder}

// Mix weighs the kinds of requests; weights are relative.
type Mix map[Kind]float64

// Phase is a stretch of traffic at one rate.
type Phase struct {
	Name     string   `json:"name"`
	Duration Duration `json:"duration"`
	Rate     float64  `json:"rate"` // × capacity
	Mix      Mix      `json:"mix,omitempty"`
}

// FaultKind names a fault the replay can inject.
type FaultKind string

const (
	// PostgresDown makes Postgres unreachable for every service: the
	// in-process Toxiproxy in front of it closes its connections and refuses
	// new ones.
	PostgresDown FaultKind = "postgres_down"
	// SlowPostgres delays every answer Postgres gives every service by
	// Latency: the database is up, and each round trip to it is slow, as
	// when it is overloaded or far away.
	SlowPostgres FaultKind = "slow_postgres"
	// NATSDown makes NATS unreachable for every service, the same way:
	// orders are still taken, and their events must wait, not vanish.
	NATSDown FaultKind = "nats_down"
	// RedisDown makes Redis stop answering every service: connections stay
	// open and nothing comes back, as in a network partition.
	RedisDown FaultKind = "redis_down"
	// SlowUsers delays every answer of the user service, as the order
	// service sees it, by Latency.
	SlowUsers FaultKind = "slow_users"
)

// FaultKinds lists every fault the replay can inject.
var FaultKinds = []FaultKind{PostgresDown, SlowPostgres, NATSDown, RedisDown, SlowUsers}

func joinKinds(ks []FaultKind) string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Injects says whether the scenario injects a fault of kind k.
func (s *Scenario) Injects(k FaultKind) bool {
	return slices.ContainsFunc(s.Faults, func(f Fault) bool { return f.Kind == k })
}

// Fault is injected At into the run, For a while.
type Fault struct {
	Kind    FaultKind `json:"kind"`
	At      Duration  `json:"at"`
	For     Duration  `json:"for"`
	Latency Duration  `json:"latency,omitempty"`
}

// Scenario is one scenario file.
type Scenario struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Mix         Mix     `json:"mix"` // phases without a mix of their own use this one
	Phases      []Phase `json:"phases"`
	Faults      []Fault `json:"faults,omitempty"`
	// Focus names the phase whose traffic the verdicts judge ("during the
	// spike"); with a fault and no focus, the fault's window is judged.
	Focus string `json:"focus,omitempty"`
}

// Duration is a time.Duration written as "30s" in the files.
type Duration struct{ time.Duration }

// UnmarshalJSON reads "30s", "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the form UnmarshalJSON reads.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

//go:embed *.yaml
var builtin embed.FS

// Builtin lists the names of the scenarios that ship with the replay.
func Builtin() []string {
	entries, _ := builtin.ReadDir(".")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return names
}

// Load reads a scenario: a built-in one by name, or a file by path.
func Load(nameOrPath string) (*Scenario, error) {
	var data []byte
	var err error
	if slices.Contains(Builtin(), nameOrPath) {
		data, err = builtin.ReadFile(nameOrPath + ".yaml")
	} else {
		data, err = os.ReadFile(filepath.Clean(nameOrPath))
	}
	if err != nil {
		return nil, fmt.Errorf("scenario %q: not a built-in one (%s) nor a readable file: %w",
			nameOrPath, strings.Join(Builtin(), ", "), err)
	}
	return Parse(data)
}

// Parse reads and checks a scenario. Unknown fields are errors: a typo in a
// scenario should not silently change what it measures.
func Parse(data []byte) (*Scenario, error) {
	var s Scenario
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("scenario %q: %w", s.Name, err)
	}
	return &s, nil
}

func (s *Scenario) check() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if len(s.Phases) == 0 {
		errs = append(errs, errors.New("at least one phase is required"))
	}
	errs = append(errs, s.Mix.check("mix")...)
	for i, p := range s.Phases {
		where := fmt.Sprintf("phase %d (%s)", i+1, p.Name)
		if p.Name == "" || p.Duration.Duration <= 0 || p.Rate <= 0 {
			errs = append(errs, fmt.Errorf("%s: needs a name, a positive duration and a positive rate", where))
		}
		if p.Mix == nil && s.Mix == nil {
			errs = append(errs, fmt.Errorf("%s: no mix, and the scenario has no default mix", where))
		}
		errs = append(errs, p.Mix.check(where)...)
	}
	for i, f := range s.Faults {
		where := fmt.Sprintf("fault %d (%s)", i+1, f.Kind)
		switch {
		case !slices.Contains(FaultKinds, f.Kind):
			errs = append(errs, fmt.Errorf("%s: unknown kind; valid: %s", where, joinKinds(FaultKinds)))
		case f.For.Duration <= 0 || f.At.Duration < 0 || f.At.Duration+f.For.Duration > s.Length():
			errs = append(errs, fmt.Errorf("%s: must start and end within the scenario's %v", where, s.Length()))
		case (f.Kind == SlowUsers || f.Kind == SlowPostgres) && f.Latency.Duration <= 0:
			errs = append(errs, fmt.Errorf("%s: needs a latency", where))
		}
	}
	if s.Focus != "" && !slices.ContainsFunc(s.Phases, func(p Phase) bool { return p.Name == s.Focus }) {
		errs = append(errs, fmt.Errorf("focus %q is not a phase", s.Focus))
	}
	if s.Focus == "" && len(s.Faults) == 0 {
		errs = append(errs, errors.New("needs a focus phase or a fault to judge"))
	}
	return errors.Join(errs...)
}

func (m Mix) check(where string) []error {
	var errs []error
	total := 0.0
	for k, w := range m {
		if !slices.Contains(Kinds, k) {
			errs = append(errs, fmt.Errorf("%s: unknown request kind %q", where, k))
		}
		if w < 0 {
			errs = append(errs, fmt.Errorf("%s: weight of %s is negative", where, k))
		}
		total += w
	}
	if m != nil && total <= 0 {
		errs = append(errs, fmt.Errorf("%s: the weights add up to nothing", where))
	}
	return errs
}

// Length is the scenario's total duration.
func (s *Scenario) Length() time.Duration {
	var d time.Duration
	for _, p := range s.Phases {
		d += p.Duration.Duration
	}
	return d
}

// At returns the phase in force at offset t and its index.
func (s *Scenario) At(t time.Duration) (Phase, int) {
	for i, p := range s.Phases {
		if t < p.Duration.Duration {
			return p, i
		}
		t -= p.Duration.Duration
	}
	return s.Phases[len(s.Phases)-1], len(s.Phases) - 1
}

// Sends says whether any phase of the scenario sends requests of kind k.
func (s *Scenario) Sends(k Kind) bool {
	return slices.ContainsFunc(s.Phases, func(p Phase) bool { return s.MixOf(p)[k] > 0 })
}

// MixOf returns the mix of phase p.
func (s *Scenario) MixOf(p Phase) Mix {
	if p.Mix != nil {
		return p.Mix
	}
	return s.Mix
}

// Window is the stretch [From, To) of a run the verdicts judge: the focus
// phase, or the first fault.
func (s *Scenario) Window() (from, to time.Duration) {
	if s.Focus != "" {
		for _, p := range s.Phases {
			if p.Name == s.Focus {
				return from, from + p.Duration.Duration
			}
			from += p.Duration.Duration
		}
	}
	f := s.Faults[0]
	return f.At.Duration, f.At.Duration + f.For.Duration
}

// Scaled returns a copy of s with every duration multiplied by f, for the
// smoke run that replays a scenario's shape in seconds.
func (s *Scenario) Scaled(f float64) *Scenario {
	c := *s
	c.Phases = slices.Clone(s.Phases)
	c.Faults = slices.Clone(s.Faults)
	scale := func(d *Duration) { d.Duration = time.Duration(float64(d.Duration) * f).Round(time.Millisecond) }
	for i := range c.Phases {
		scale(&c.Phases[i].Duration)
	}
	for i := range c.Faults {
		scale(&c.Faults[i].At)
		scale(&c.Faults[i].For)
	}
	return &c
}
