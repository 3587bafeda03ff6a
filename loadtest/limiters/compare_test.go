package limiters_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stampede-shop/stampede/loadtest/limiters"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/resilience/overload"
)

var scenarios = map[string]overload.Scenario{
	"10x for 5s": {Workers: 4, Service: 10 * time.Millisecond, Load: 10, Duration: 5 * time.Second, ClientTimeout: 300 * time.Millisecond},
	"3x for 5s":  {Workers: 4, Service: 10 * time.Millisecond, Load: 3, Duration: 5 * time.Second, ClientTimeout: 300 * time.Millisecond},
}

func run(t *testing.T, s overload.Scenario, adm func() overload.Admission) overload.Result {
	var r overload.Result
	synctest.Test(t, func(t *testing.T) { r = overload.Run(s, adm()) })
	return r
}

// TestSideBySide prints the comparison table of pkg/resilience/README.md and
// holds Stampede's shedder to not losing: its goodput must be at least
// failsafe-go's, within one percentage point.
func TestSideBySide(t *testing.T) {
	policies := []struct {
		name string
		new  func() overload.Admission
	}{
		{"none", func() overload.Admission { return overload.AdmitAll{} }},
		{"stampede Shedder", func() overload.Admission {
			return limiters.Stampede{Shedder: resilience.NewShedder(resilience.ShedSettings{}, nil)}
		}},
		{"failsafe-go adaptivelimiter", func() overload.Admission { return limiters.NewFailsafe() }},
		{"go-zero AdaptiveShedder", func() overload.Admission { return limiters.NewGoZero() }},
	}
	var table strings.Builder
	fmt.Fprintln(&table, "| scenario | policy | goodput (% of capacity) | p99 admitted | p99 rejected | rejected | late |")
	fmt.Fprintln(&table, "|---|---|---:|---:|---:|---:|---:|")
	for _, sname := range []string{"10x for 5s", "3x for 5s"} {
		s := scenarios[sname]
		results := map[string]overload.Result{}
		for _, p := range policies {
			r := run(t, s, p.new)
			results[p.name] = r
			rejected := "–" // nothing was rejected
			if r.Rejected > 0 {
				rejected = r.P99Rejected.Round(time.Microsecond).String()
			}
			fmt.Fprintf(&table, "| %s | %s | %.1f | %v | %s | %d | %d |\n", sname, p.name, 100*r.Goodput,
				r.P99Admitted.Round(time.Millisecond), rejected, r.Rejected, r.Late)
		}
		ours, theirs := results["stampede Shedder"], results["failsafe-go adaptivelimiter"]
		if ours.Goodput < theirs.Goodput-0.01 {
			t.Errorf("%s: our goodput %.1f%% loses to failsafe-go's %.1f%%", sname, 100*ours.Goodput, 100*theirs.Goodput)
		}
		if ours.Goodput < 0.9 {
			t.Errorf("%s: our goodput %.1f%% is under 90%%", sname, 100*ours.Goodput)
		}
	}
	t.Log("\n" + table.String())
}
