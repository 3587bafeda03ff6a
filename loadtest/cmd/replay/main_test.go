package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
