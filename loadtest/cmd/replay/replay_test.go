package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/loadtest/report"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

func TestMain(m *testing.M) {
	if err := testkit.KeepStreamStore(); err != nil { // the shop here creates and deletes streams
		fmt.Fprintln(os.Stderr, "NATS with JetStream is required:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// localDeps points the replay at the local Postgres, Redis and NATS and
// returns a context that ends the run if it hangs.
func localDeps(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	t.Setenv("REPLAY_POSTGRES_URL", testkit.PostgresServer())
	t.Setenv("REPLAY_REDIS_URL", testkit.RedisURL())
	t.Setenv("REPLAY_NATS_URL", testkit.NATSURL())
	return ctx
}

// The command as `make replay` runs it, in seconds: the flags read, the
// services built and run against the real Postgres, Redis and NATS, the
// report written where -out says and named on stdout, exit 0 — and with
// -cpuprofile, a CPU profile of the replay that pprof reads.
func TestTheCommandEndToEnd(t *testing.T) {
	ctx := localDeps(t)
	dir := t.TempDir()
	out, prof := filepath.Join(dir, "report"), filepath.Join(dir, "replay.pprof")
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-profiles", "resilient", "-scale", "0.05", "-capacity", "20", "-products", "500",
		"-shoppers", "6", "-retries", "0", "-out", out, "-cpuprofile", prof}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stderr.String(), stdout.String())
	}
	if want := "Report: " + filepath.Join(out, "report.html"); !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout does not say %q:\n%s", want, stdout.String())
	}
	s := readSummary(t, out)
	if len(s.Profiles) != 1 || s.Profiles[0].Name != "resilient" || s.Capacity != 20 || s.Profiles[0].Headline.OfferedRPS <= 0 {
		t.Fatalf("summary: %d profiles, capacity %v; want the resilient one, run at 20/s", len(s.Profiles), s.Capacity)
	}
	if s.Retries != 0 {
		t.Errorf("summary: shoppers retried up to %d times; -retries 0 says never", s.Retries)
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
		t.Fatal(err)
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", prof).CombinedOutput()
	if err != nil || !strings.Contains(string(top), "flat%") {
		t.Fatalf("pprof cannot read the profile: %v\n%s", err, top)
	}
}

// -repeat runs the scenario again and again, each run into run-<i>/, and
// writes verdicts.md: the runs' verdicts side by side, as Agreement reads
// the summaries they wrote.
func TestRepeatComparesTheVerdicts(t *testing.T) {
	ctx := localDeps(t)
	out := filepath.Join(t.TempDir(), "report")
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-profiles", "resilient", "-scale", "0.05", "-capacity", "20", "-products", "500",
		"-shoppers", "6", "-out", out, "-repeat", "2"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stderr.String(), stdout.String())
	}
	var runs []*report.Summary
	for _, dir := range []string{"run-1", "run-2"} {
		s := readSummary(t, filepath.Join(out, dir))
		if len(s.Profiles) != 1 || len(s.Profiles[0].Verdicts) == 0 {
			t.Fatalf("%s: %d profiles; want the resilient one, judged", dir, len(s.Profiles))
		}
		if s.Retries != 1 {
			t.Errorf("%s: shoppers retried up to %d times; by default once", dir, s.Retries)
		}
		runs = append(runs, s)
	}
	written, err := os.ReadFile(filepath.Join(out, "verdicts.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := report.Agreement(runs); string(written) != want {
		t.Fatalf("verdicts.md:\n%s\nwant, from the runs' summaries:\n%s", written, want)
	}
	for _, want := range []string{"▶ run 2 of 2", "# Verdicts over 2 runs of promo", "Verdicts compared: " + filepath.Join(out, "verdicts.md")} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout does not say %q", want)
		}
	}
}

// readSummary reads the summary.json a run wrote into dir.
func readSummary(t *testing.T, dir string) *report.Summary {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s report.Summary
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}
