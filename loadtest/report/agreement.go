package report

import (
	"fmt"
	"slices"
	"strings"
)

// Agreement compares the verdicts of several runs of one scenario — the
// replay's reproducibility check: a row per profile and claim (the
// invariants too), a column per run, and whether every run said the same.
// A claim a run did not judge (its profile missing, say) counts as a
// different verdict.
func Agreement(runs []*Summary) (md string, same bool) {
	type row struct{ profile, claim string }
	var rows []row
	seen := map[row][]string{} // the verdict of each run: ✅, ❌ or –
	record := func(r row, run int, held bool) {
		if _, ok := seen[r]; !ok {
			rows = append(rows, r)
			seen[r] = slices.Repeat([]string{"–"}, len(runs))
		}
		seen[r][run] = mark(held)
	}
	var capacities []string
	for i, s := range runs {
		capacities = append(capacities, fmt.Sprintf("%.0f", s.Capacity))
		for _, p := range s.Profiles {
			for _, v := range p.Verdicts {
				record(row{p.Name, v.Claim}, i, v.Held)
			}
			record(row{p.Name, "invariants hold"}, i, len(p.Broken) == 0)
		}
	}
	var b strings.Builder
	scenario := ""
	if len(runs) > 0 {
		scenario = runs[0].Scenario
	}
	fmt.Fprintf(&b, "# Verdicts over %d runs of %s\n\nCapacity, run by run: %s requests/s.\n\n| profile | claim |", len(runs), scenario, strings.Join(capacities, ", "))
	for i := range runs {
		fmt.Fprintf(&b, " run %d |", i+1)
	}
	b.WriteString(" the same |\n|---|---|" + strings.Repeat("---|", len(runs)+1) + "\n")
	same = true
	for _, r := range rows {
		verdicts := seen[r]
		agree := !slices.Contains(verdicts, "–") && !slices.ContainsFunc(verdicts, func(v string) bool { return v != verdicts[0] })
		same = same && agree
		answer := "yes"
		if !agree {
			answer = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.profile, r.claim, strings.Join(verdicts, " | "), answer)
	}
	if same {
		fmt.Fprintf(&b, "\nEvery run gave the same verdicts.\n")
	} else {
		fmt.Fprintf(&b, "\nThe runs disagree: each run's report says what it saw.\n")
	}
	return b.String(), same
}
