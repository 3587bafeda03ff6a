// Command replay reproduces the promotion outage of DESIGN.md and shows what
// each fix buys. It builds the three services from this checkout, finds the
// shop's capacity on this machine, runs a scenario under each profile against
// a freshly started shop (supervised as a kubelet would: liveness every 2 s,
// three failures → SIGTERM, 10 s grace, SIGKILL, restart with backoff),
// prints its progress live, checks the invariants, and writes the report:
//
//	loadtest/out/<scenario>-<time>/report.html   charts, self-contained
//	loadtest/out/<scenario>-<time>/summary.json  every number
//	loadtest/out/<scenario>-<time>/summary.md    the headline table
//
// With -repeat N it runs the whole scenario N times (each run calibrated anew
// unless -capacity is given), each into run-<i>/ of that directory, and
// writes verdicts.md beside them: every claim, run by run, and whether the
// runs agreed — the check that the replay is reproducible on this machine.
//
// Usage:
//
//	go run ./loadtest/cmd/replay [-scenario promo] [-profiles naive,resilient] [-ablations]
//	                             [-capacity N] [-scale F] [-retries N] [-repeat N] [-strict] [-cpuprofile FILE]
//	replay -target user=URL,search=URL,order=URL -target-admin ... -target-db ... [-toxiproxy URL]
//
// With -target it drives a shop that runs already (the compose stack:
// `docker compose run --rm replay`): fixes are switched per profile through
// PUT /admin/fixes, Postgres is broken through the stack's Toxiproxy, the
// invariants are checked in its databases, and the services are supervised
// by their orchestrator, not by the replay.
//
// Exit status: 0 when every invariant held (and, with -strict, every
// verdict); 1 when an invariant broke; 3 when -strict and a verdict failed;
// 2 for bad usage.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/stampede-shop/stampede/loadtest/replay"
	"github.com/stampede-shop/stampede/loadtest/report"
	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
	"github.com/stampede-shop/stampede/pkg/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is bad usage: exit 2.
type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	code, err := replayMain(ctx, args, stdout)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "replay:", err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "replay:", err)
		return 1
	}
	return code
}

func replayMain(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	f, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	opts := f.opts
	stamp := fmt.Sprintf("%s-%s", opts.Scenario.Name, time.Now().Format("20060102-150405"))
	if f.target != "" {
		remote, err := remoteShop(f.target, f.targetAdmin, f.targetDB, f.toxiproxy)
		if err != nil {
			return 0, usageError{err}
		}
		opts.Target = remote
		if f.check {
			return 0, nil
		}
		opts.Out = cmp.Or(f.out, filepath.Join("out", stamp))
	} else {
		repo, err := repoRoot()
		if err != nil {
			return 0, err
		}
		opts.Out = cmp.Or(f.out, filepath.Join(repo, "loadtest", "out", stamp))
		if f.check {
			return 0, nil
		}
		fmt.Fprintf(stdout, "▶ building the services\n")
		if opts.Bins, err = stack.Build(ctx, repo, filepath.Join(repo, "loadtest", "out", ".bin")); err != nil {
			return 0, err
		}
	}
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return 0, err
		}
		defer stop()
	}
	if f.repeat == 1 {
		_, code, err := runOnce(ctx, opts, stdout, f.strict)
		return code, err
	}
	return runRepeated(ctx, opts, f.repeat, stdout, f.strict)
}

// flags is the command line, read and checked: a run's options, and what
// decides where and how often it runs.
type flags struct {
	opts                                     replay.Options
	out, cpuProfile                          string
	strict, check                            bool
	repeat                                   int
	target, targetAdmin, targetDB, toxiproxy string // -target's shop
}

// parseFlags reads the command line; a bad flag or value is a usageError,
// -help is flag.ErrHelp.
func parseFlags(args []string, stdout io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stdout)
	name := fs.String("scenario", "promo", "a built-in scenario ("+strings.Join(scenario.Builtin(), ", ")+") or a scenario file")
	profiles := fs.String("profiles", "naive,resilient", "profiles to run: naive, resilient, naive+<fix>, resilient-<fix>")
	ablations := fs.Bool("ablations", false, "also run every one-fix ablation (naive+<fix> and resilient-<fix>: 24 more runs)")
	capacity := fs.Float64("capacity", 0, "the shop's capacity in requests/s; 0 measures it first")
	scale := fs.Float64("scale", 1, "multiply the scenario's durations (0.2: a quick look)")
	shoppers := fs.Int("shoppers", 40, "pre-registered users")
	retries := fs.Int("retries", 1, "how many times a shopper tries a failed request again (0: never; each retry is more load)")
	products := fs.Int("products", 10_000, "catalog size")
	fs.StringVar(&f.out, "out", "", "report directory (default loadtest/out/<scenario>-<time>)")
	fs.BoolVar(&f.strict, "strict", false, "exit 3 if a profile's verdict fails")
	fs.IntVar(&f.repeat, "repeat", 1, "run the whole scenario this many times and compare the verdicts (each run calibrated anew unless -capacity)")
	fs.BoolVar(&f.check, "check", false, "check the flags and the environment, then exit (as the services' check-config)")
	pg := fs.String("postgres", env("REPLAY_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "a Postgres server to create the run's databases on")
	rd := fs.String("redis", env("REPLAY_REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis")
	nt := fs.String("nats", env("REPLAY_NATS_URL", "nats://127.0.0.1:4222"), "NATS with JetStream")
	fs.StringVar(&f.target, "target", env("REPLAY_TARGET", ""), "drive a shop that runs already instead of starting one: user=URL,search=URL,order=URL (the APIs)")
	fs.StringVar(&f.targetAdmin, "target-admin", env("REPLAY_TARGET_ADMIN", ""), "with -target: the admin listeners, user=URL,search=URL,order=URL (fixes are switched there)")
	fs.StringVar(&f.targetDB, "target-db", env("REPLAY_TARGET_DB", ""), "with -target: the databases, user=URL,search=URL,order=URL (for the invariants)")
	fs.StringVar(&f.toxiproxy, "toxiproxy", env("REPLAY_TOXIPROXY", ""), "with -target: Toxiproxy's API (proxy \"postgres\" for db-outage and db-latency, \"nats\" for nats-outage, \"redis\" for redis-outage, \"users\" for slow-dependency)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write the replay's own CPU profile (shoppers, supervisor, proxy) to this file, for go tool pprof")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, err
		}
		return f, usageError{err}
	}
	sc, err := scenario.Load(*name)
	switch {
	case err != nil:
		return f, usageError{err}
	case *scale <= 0:
		return f, usageError{errors.New("-scale must be positive")}
	case *retries < 0:
		return f, usageError{errors.New("-retries must be 0 or more")}
	case f.repeat < 1:
		return f, usageError{errors.New("-repeat must be 1 or more")}
	}
	if *scale != 1 {
		sc = sc.Scaled(*scale)
	}
	ps, err := parseProfiles(*profiles, *ablations)
	if err != nil {
		return f, usageError{err}
	}
	f.opts = replay.Options{Scenario: sc, Profiles: ps, Capacity: *capacity,
		Deps: stack.Deps{Postgres: *pg, Redis: *rd, NATS: *nt}, Products: *products, Shoppers: *shoppers, Retries: *retries, Progress: stdout}
	if *retries == 0 {
		f.opts.Retries = -1 // Options' zero is the default, one retry
	}
	return f, nil
}

// parseProfiles reads -profiles, a comma-separated list, and adds every
// one-fix ablation with -ablations.
func parseProfiles(list string, ablations bool) ([]replay.Profile, error) {
	var ps []replay.Profile
	for _, n := range strings.Split(list, ",") {
		p, err := replay.ParseProfile(strings.TrimSpace(n))
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	if ablations {
		ps = append(ps, replay.Ablations()...)
	}
	return ps, nil
}

// startCPUProfile profiles the replay's own process into path: the shoppers
// share the machine with the shop, and what they cost is CPU the shop does
// not get. The function it returns stops the profile.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// runRepeated runs the scenario n times, each into run-<i>/ of opts.Out,
// writes verdicts.md beside them, and returns the worst exit status of the
// runs: a broken invariant (1) outranks a failed verdict (3).
func runRepeated(ctx context.Context, opts replay.Options, n int, stdout io.Writer, strict bool) (int, error) {
	out := opts.Out
	var runs []*report.Summary
	code := 0
	for i := 1; i <= n; i++ {
		fmt.Fprintf(stdout, "\n▶ run %d of %d\n", i, n)
		opts.Out = filepath.Join(out, fmt.Sprintf("run-%d", i))
		s, c, err := runOnce(ctx, opts, stdout, strict)
		if err != nil {
			return 0, err
		}
		runs = append(runs, s)
		if c == 1 || code == 0 {
			code = c
		}
	}
	md, _ := report.Agreement(runs)
	if err := os.WriteFile(filepath.Join(out, "verdicts.md"), []byte(md), 0o644); err != nil {
		return 0, err
	}
	fmt.Fprintf(stdout, "\n%s\nVerdicts compared: %s\n", md, filepath.Join(out, "verdicts.md"))
	return code, nil
}

// runOnce runs the scenario once, writes its report to opts.Out and prints
// it, and returns the exit status it earns on its own: 1 if an invariant
// broke, 3 if -strict and a verdict failed, 0 otherwise.
func runOnce(ctx context.Context, opts replay.Options, stdout io.Writer, strict bool) (*report.Summary, int, error) {
	began := time.Now()
	s, err := replay.Run(ctx, opts)
	if s != nil && len(s.Profiles) > 0 {
		if werr := report.Write(opts.Out, s); werr != nil {
			return nil, 0, werr
		}
		fmt.Fprintf(stdout, "\n%s\nReport: %s (%s)\n", report.Markdown(s), filepath.Join(opts.Out, "report.html"), time.Since(began).Round(time.Second))
	}
	if err != nil {
		return nil, 0, err
	}
	return s, exitCode(s, strict, stdout), nil
}

// exitCode is what a run earns: 1 if a profile broke an invariant — what
// must never happen did — whatever the verdicts; else 3 if strict and a
// verdict failed; else 0. It names on w each profile and claim that cost it.
func exitCode(s *report.Summary, strict bool, w io.Writer) int {
	code := 0
	for _, p := range s.Profiles {
		if len(p.Broken) > 0 {
			fmt.Fprintf(w, "✘ %s broke invariants: %s\n", p.Name, strings.Join(p.Broken, "; "))
			code = 1
		}
	}
	if code != 0 || !strict {
		return code
	}
	for _, p := range s.Profiles {
		for _, v := range p.Verdicts {
			if !v.Held {
				fmt.Fprintf(w, "✘ %s: %s (%s)\n", p.Name, v.Claim, v.Seen)
				code = 3
			}
		}
	}
	return code
}

// remoteShop reads the -target flags.
func remoteShop(api, admin, dbs, toxiproxy string) (*stack.Remote, error) {
	r := &stack.Remote{Toxiproxy: toxiproxy}
	var err error
	if r.APIs, err = stack.ParseTargets("target", api); err != nil {
		return nil, err
	}
	if r.Admins, err = stack.ParseTargets("target-admin", admin); err != nil {
		return nil, err
	}
	if r.Databases, err = stack.ParseTargets("target-db", dbs); err != nil {
		return nil, err
	}
	// The services' own loader: ADMIN_TOKEN or ADMIN_TOKEN_FILE, as they read it.
	e := config.New(os.Getenv)
	r.AdminToken = e.Secret("ADMIN_TOKEN", "").Reveal()
	if err := e.Err(); err != nil {
		return nil, fmt.Errorf("-target needs the services' admin token: %w", err)
	}
	return r, nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// repoRoot finds the checkout: the directory with go.work, from here up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the replay from inside the Stampede checkout (no go.work found above here)")
		}
		dir = parent
	}
}
