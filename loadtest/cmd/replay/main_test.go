package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stampede-shop/stampede/loadtest/report"
)

// The command's contract: bad usage exits 2 with the reason on stderr,
// before anything is built or started; -check and -help exit 0.
func TestUsage(t *testing.T) {
	t.Setenv("ADMIN_TOKEN", "tok")
	const targets = "user=http://u:8080,search=http://s:8080,order=http://o:8080"
	for _, tt := range []struct {
		name string
		args []string
		code int
		say  string // on stderr (exit 2) or stdout (exit 0)
	}{
		{"an unknown scenario", []string{"-scenario", "black-friday"}, 2, "black-friday"},
		{"a scale of zero", []string{"-scale", "0"}, 2, "-scale must be positive"},
		{"no run at all", []string{"-repeat", "0"}, 2, "-repeat must be 1 or more"},
		{"fewer than no retries", []string{"-retries", "-1"}, 2, "-retries must be 0 or more"},
		{"an unknown profile", []string{"-profiles", "naive,resilient-nope"}, 2, "nope"},
		{"an unknown flag", []string{"-fast"}, 2, "-fast"},
		{"a target without every service", []string{"-target", "user=http://u:8080"}, 2, "no URL for the search service"},
		{"a target that is not service=URL", []string{"-target", "http://u:8080"}, 2, "is not service=URL"},
		{"a target without its admin listeners", []string{"-target", targets, "-check"}, 2, "-target-admin"},
		{"check, native", []string{"-check", "-scenario", "db-outage", "-profiles", "naive+breaker"}, 0, ""},
		{"check, target", []string{"-check", "-target", targets, "-target-admin", targets, "-target-db", targets}, 0, ""},
		{"help", []string{"-help"}, 0, "-cpuprofile"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			said := stdout.String()
			if tt.code == 2 {
				said = stderr.String()
			}
			if code != tt.code || !strings.Contains(said, tt.say) {
				t.Fatalf("exit %d, said %q / %q; want exit %d saying %q", code, stdout.String(), stderr.String(), tt.code, tt.say)
			}
			if strings.Contains(stdout.String(), "building") {
				t.Fatal("it started building")
			}
		})
	}
}

// A broken invariant fails the run (exit 1) whatever the verdicts say; a
// failed verdict does only with -strict (exit 3), and each one that failed
// is named.
func TestExitCode(t *testing.T) {
	held := report.Verdict{Claim: "zero restarts", Held: true, Seen: "0"}
	missed := func(claim string) report.Verdict { return report.Verdict{Claim: claim, Seen: "seen"} }
	tests := []struct {
		name     string
		profiles []report.Profile
		strict   bool
		code     int
		say      []string
	}{
		{"all held", []report.Profile{{Name: "resilient", Verdicts: []report.Verdict{held}}}, true, 0, nil},
		{"a verdict missed", []report.Profile{{Name: "resilient", Verdicts: []report.Verdict{missed("p99 ≤ 200 ms"), held}}}, false, 0, nil},
		{"two verdicts missed, strict", []report.Profile{
			{Name: "naive", Verdicts: []report.Verdict{missed("goodput below 20 %")}},
			{Name: "resilient", Verdicts: []report.Verdict{held, missed("p99 ≤ 200 ms")}}}, true, 3,
			[]string{"✘ naive: goodput below 20 % (seen)", "✘ resilient: p99 ≤ 200 ms (seen)"}},
		{"an invariant broken", []report.Profile{
			{Name: "naive", Broken: []string{"2 units oversold"}, Verdicts: []report.Verdict{held}},
			{Name: "resilient", Verdicts: []report.Verdict{missed("p99 ≤ 200 ms")}}}, true, 1,
			[]string{"✘ naive broke invariants: 2 units oversold"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := exitCode(&report.Summary{Profiles: tt.profiles}, tt.strict, &out)
			said := strings.Split(strings.TrimSpace(out.String()), "\n")
			if out.Len() == 0 {
				said = nil
			}
			if code != tt.code || !slices.Equal(said, tt.say) {
				t.Fatalf("exit %d saying %q; want exit %d saying %q", code, said, tt.code, tt.say)
			}
		})
	}
}
