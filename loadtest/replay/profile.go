// Package replay runs the outage replay: it finds the shop's capacity on this
// machine, then runs a scenario under each profile against a freshly started
// shop, watches it live, checks the invariants, and hands the numbers to
// package report.
package replay

import (
	"fmt"
	"strings"

	"github.com/stampede-shop/stampede/pkg/fixes"
)

// Profile is a set of fixes the scenario is run under.
type Profile struct {
	Name  string // naive, resilient, naive+hot_row, resilient-shedding
	Fixes string // the FIXES value
	// Env sets (or, with "", unsets) variables of the services the replay
	// starts. A -target shop keeps its own, but for SHED_TARGET_CPU_WAIT,
	// which its admin API switches (PUT /admin/shedding).
	Env map[string]string
}

// ParseProfile reads a profile name: naive, resilient, naive+<fix> (the
// incident with one fix), or resilient-<fix> (everything but one fix).
func ParseProfile(name string) (Profile, error) {
	value := name
	switch {
	case strings.HasPrefix(name, "naive+"):
		value = "naive," + strings.ReplaceAll(strings.TrimPrefix(name, "naive"), "+", ",+")[1:]
	case strings.HasPrefix(name, "resilient-"):
		value = "resilient," + strings.ReplaceAll(strings.TrimPrefix(name, "resilient"), "-", ",-")[1:]
	case name == "naive" || name == "resilient":
	default:
		return Profile{}, fmt.Errorf("profile %q: want naive, resilient, naive+<fix> or resilient-<fix>", name)
	}
	if _, err := fixes.Parse(value); err != nil {
		return Profile{}, fmt.Errorf("profile %q: %w", name, err)
	}
	return Profile{Name: name, Fixes: value}, nil
}

// Ablations are the one-fix-at-a-time profiles: the incident plus each fix,
// and the fixed shop minus each fix.
func Ablations() []Profile {
	var ps []Profile
	for _, prefix := range []string{"naive+", "resilient-"} {
		for _, f := range fixes.All {
			p, _ := ParseProfile(prefix + string(f))
			ps = append(ps, p)
		}
	}
	return ps
}

// Has reports whether the profile switches fix f on.
func (p Profile) Has(f fixes.Name) bool {
	s, err := fixes.Parse(p.Fixes)
	return err == nil && s.Has(f)
}
