package report

import (
	"strings"
	"testing"
)

// Three runs: the same verdicts, then one naive claim that changed, then a
// run without the resilient profile. Each row says whether every run agreed.
func TestAgreementComparesTheRunsVerdicts(t *testing.T) {
	run := func(capacity float64, naiveDown bool, profiles ...string) *Summary {
		s := &Summary{Scenario: "promo", Capacity: capacity}
		for _, name := range profiles {
			p := Profile{Name: name, Verdicts: []Verdict{{Claim: "goodput claim", Held: true}}}
			if name == "naive" {
				p.Verdicts = append(p.Verdicts, Verdict{Claim: "still down 10 s after", Held: naiveDown})
			}
			s.Profiles = append(s.Profiles, p)
		}
		return s
	}
	md, same := Agreement([]*Summary{run(854, true, "naive", "resilient"), run(683, true, "naive", "resilient")})
	if !same || !strings.Contains(md, "# Verdicts over 2 runs of promo") || !strings.Contains(md, "Capacity, run by run: 854, 683 requests/s.") ||
		!strings.Contains(md, "| naive | still down 10 s after | ✅ | ✅ | yes |") || !strings.Contains(md, "Every run gave the same verdicts.") {
		t.Fatalf("two agreeing runs: same %v\n%s", same, md)
	}
	md, same = Agreement([]*Summary{run(854, true, "naive", "resilient"), run(304, false, "naive", "resilient"), run(304, true, "naive")})
	for _, want := range []string{
		"| naive | goodput claim | ✅ | ✅ | ✅ | yes |",
		"| naive | still down 10 s after | ✅ | ❌ | ✅ | **no** |",
		"| naive | invariants hold | ✅ | ✅ | ✅ | yes |",
		"| resilient | goodput claim | ✅ | ✅ | – | **no** |",
		"The runs disagree",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in\n%s", want, md)
		}
	}
	if same {
		t.Error("runs that disagree called the same")
	}
}
