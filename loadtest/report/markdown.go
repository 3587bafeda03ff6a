package report

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/stampede-shop/stampede/loadtest/load"
	"github.com/stampede-shop/stampede/pkg/telemetry"
)

// Markdown renders the headline table and the verdicts.
func Markdown(s *Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Replay: %s\n\n%s\n\n", s.Scenario, strings.TrimSpace(s.Description))
	fmt.Fprintf(&b, "Capacity on this machine (%s): **%.0f requests/s** (%s). ", s.Machine, s.Capacity, s.CapacityBasis())
	fmt.Fprintf(&b, "Judged window: seconds %d–%d. Started %s. %s\n\n", s.Window[0], s.Window[1], s.Started.Format("2006-01-02 15:04:05 MST"), RetryPolicy(s.Retries))
	b.WriteString("| profile | offered/s | of it retries | goodput/s | goodput % of capacity | p99 good | p99 refusals: service / shoppers | errors | outage | recovery | restarts | oversold | missing orders | events lost / twice | stale served |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range s.Profiles {
		h := p.Headline
		fmt.Fprintf(&b, "| %s | %.0f | %.0f %% | %.0f | **%.0f %%** | %s | %s / %s | %s | %d s | %s | %s | %d | %d | %d / %d | %d |\n",
			p.Name, h.OfferedRPS, h.RetryPct, h.GoodputRPS, h.GoodputPct, Millis(h.P99Good), AtMost(h.P99RefusalService), Millis(h.P99Refusal), Errors(h.ErrorRate, h.Unavailable),
			h.OutageS, Recovery(h.RecoveryS), RestartsCell(p), h.Oversold, h.Missing, h.EventsLost, h.EventsTwice, h.Stale)
	}
	b.WriteString("\nErrors are % of the requests offered in the judged window, by class: ")
	b.WriteString("late = a right answer after 1 s, when the shopper had given up (not goodput), limited = 429, shed = 503 at the door, unavailable = other 503 (a request's deadline, a pool timeout, a breaker open; then how many carried each error code: a code of timeout is the service's own deadline, not the shoppers'), in_progress = 409, a retry that found the first attempt still running, ")
	b.WriteString("timeout = no answer within the client's patience, refused = nobody listening (killed, restarting).\n")
	b.WriteString("Refusals (429/503) are timed twice: by the services, from the request entering them to the answer (read from a histogram, so an upper bound; the verdict gives each error code's count and p99 apart), ")
	b.WriteString("and by the shoppers, who also count the network, the kernel's queues and waiting for a CPU on a machine they share with the shop (the verdicts show both sides' waits for a CPU). " +
		"A refusal the service sends after the shopper has given up is a timeout to the shoppers, in their errors and not in their p99: where a shop hangs (naive), the services' number can be seconds.\n")
	for _, p := range s.Profiles {
		fmt.Fprintf(&b, "\n## %s (`FIXES=%s`)\n\n", p.Name, p.Fixes)
		for _, n := range p.Notes {
			fmt.Fprintf(&b, "- ⚠️ %s\n", n)
		}
		for _, v := range p.Verdicts {
			fmt.Fprintf(&b, "- %s %s — %s\n", mark(v.Held), v.Claim, v.Seen)
		}
		if len(p.Broken) > 0 {
			fmt.Fprintf(&b, "- ❌ **invariants broken**: %s\n", strings.Join(p.Broken, "; "))
		} else {
			b.WriteString("- ✅ invariants hold: nothing oversold, every acknowledged order stored, no event applied twice\n")
		}
	}
	return b.String()
}

// mark is a verdict's sign: ✅ held, ❌ not.
func mark(held bool) string {
	if held {
		return "✅"
	}
	return "❌"
}

// AtMost formats an upper bound in milliseconds, read from a histogram's
// bucket: "≤ 2.5 ms"; "–" if there was nothing to time. Beyond the last
// bucket (+Inf, or -1 once through JSON) it says so.
func AtMost(ms float64) string {
	switch {
	case ms == 0 || math.IsNaN(ms):
		return "–"
	case ms < 0 || math.IsInf(ms, 1):
		return "> " + Millis(1000*telemetry.DurationBuckets[len(telemetry.DurationBuckets)-1])
	}
	return "≤ " + Millis(ms)
}

// Millis formats a latency in ms.
func Millis(ms float64) string {
	switch {
	case ms == 0 || math.IsNaN(ms):
		return "–"
	case ms >= 1000:
		return fmt.Sprintf("%.3g s", ms/1000) // 1.25 s, 10 s
	case ms >= 10:
		return fmt.Sprintf("%.0f ms", ms)
	default:
		return fmt.Sprintf("%.1f ms", ms)
	}
}

// Percent formats a share in percent; negative means not known.
func Percent(pct float64) string {
	if pct < 0 || math.IsNaN(pct) {
		return "not known here"
	}
	return fmt.Sprintf("%.0f %%", pct)
}

// RestartsCell is the profile's restarts, if the replay counted them: a
// shop it drives with -target is supervised by its orchestrator, whose
// restarts the replay cannot see, and 0 would claim it saw none.
func RestartsCell(p Profile) string {
	if !p.Supervised {
		return "not counted"
	}
	return fmt.Sprint(p.Headline.Restarts)
}

// RetryPolicy says what the shoppers did after a failure: every retry is
// load the shop did not ask for, counted in the offered rate.
func RetryPolicy(retries int) string {
	switch retries {
	case 0:
		return "Shoppers never retry."
	case 1:
		return "Shoppers retry a failed request once (the offered rate counts every attempt)."
	}
	return fmt.Sprintf("Shoppers retry a failed request up to %d times (the offered rate counts every attempt).", retries)
}

// Recovery formats a recovery time.
func Recovery(s float64) string {
	if s < 0 {
		return "not within the run"
	}
	return fmt.Sprintf("%.0f s", s)
}

// Errors formats the error rates that are not zero, and the error codes of
// the unavailable answers.
func Errors(rates map[string]float64, unavailable map[string]int) string {
	var parts []string
	for _, c := range load.Classes {
		if c.Good() {
			continue
		}
		if r := rates[string(c)]; r >= 0.05 {
			part := fmt.Sprintf("%s %.1f %%", c, r)
			if c == load.Unavailable && len(unavailable) > 0 {
				part += " (codes: " + byCount(unavailable) + ")"
			}
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// byCount lists counts by name, the largest first: "timeout 580, pool_timeout 25".
func byCount(counts map[string]int) string {
	var parts []string
	for _, name := range largestFirst(counts, cmp.Compare[int]) {
		parts = append(parts, fmt.Sprintf("%s %d", cmp.Or(name, "no code"), counts[name]))
	}
	return strings.Join(parts, ", ")
}

// RefusalsByCode lists refusals by the code of their body, the slowest
// first: "3 pool_timeout ≤ 250 ms, 40512 overloaded ≤ 0.5 ms".
func RefusalsByCode(byCode map[string]Refusals) string {
	var parts []string
	for _, code := range largestFirst(byCode, func(a, b Refusals) int { return cmp.Compare(a.P99, b.P99) }) {
		r := byCode[code]
		parts = append(parts, fmt.Sprintf("%d %s %s", r.Count, cmp.Or(code, "without a code"), AtMost(r.P99)))
	}
	return strings.Join(parts, ", ")
}

// largestFirst is m's names, the name of the largest value first by
// compare, equal values by name.
func largestFirst[V any](m map[string]V, compare func(a, b V) int) []string {
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(compare(m[b], m[a]), cmp.Compare(a, b)) })
	return names
}
