package replay

import (
	"fmt"
	"strings"

	"github.com/stampede-shop/stampede/loadtest/report"
	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
)

// The claims on how fast refusals are, as judge words them (with ", timed
// in the services" after): a time, which a report judges on the machine it
// ran on and a test on a busy CI machine would not (see the smoke runs).
const (
	claimExcessRefusedFast = "the excess refused fast: p99 of 429/503 ≤ 10 ms"
	claimOutageRefusedFast = "what cannot be served is refused fast: p99 of 503 ≤ 10 ms"
)

// judge states what the profile is expected to show in this scenario (the
// claims of the replay issue) and whether it did. Profiles without claims
// (the ablations) report numbers only.
func judge(sc *scenario.Scenario, p Profile, pr report.Profile) []report.Verdict {
	j := &judgement{sc: sc, pr: pr}
	switch p.Name {
	case "naive":
		j.naive()
	case "resilient":
		j.resilient()
	}
	return j.verdicts
}

// judgement is one profile's run being judged: its claims, held or not, as
// they are made.
type judgement struct {
	sc       *scenario.Scenario
	pr       report.Profile
	verdicts []report.Verdict
}

// spike says the scenario has a spike to judge (promo), not only a fault.
func (j *judgement) spike() bool { return j.sc.Focus != "" }

func (j *judgement) claim(held bool, text, seen string, args ...any) {
	j.verdicts = append(j.verdicts, report.Verdict{Claim: text, Held: held, Seen: fmt.Sprintf(seen, args...)})
}

// naive: the incident, and each fault's own way of bringing the shop down.
func (j *judgement) naive() {
	h, sc := j.pr.Headline, j.sc
	if j.spike() {
		j.claim(h.GoodputPct < 20, "goodput during the spike falls below 20 % of capacity", "%.0f %%", h.GoodputPct)
		j.killed("liveness kills and restarts happen")
		j.claim(h.RecoveryS < 0 || h.RecoveryS > 10, "the order API is still down 10 s after the spike ends",
			"recovery %s%s", report.Recovery(h.RecoveryS), goneInto(sc, j.pr))
	}
	// Nothing a shopper asks for needs NATS, and everything Redis does
	// has a fallback; the naive shop goes down all the same (and forgets
	// what it sold, without NATS).
	for _, d := range []struct {
		fault scenario.FaultKind
		name  string
	}{{scenario.NATSDown, "NATS"}, {scenario.RedisDown, "Redis"}} {
		if sc.Injects(d.fault) {
			j.killed("liveness probes that ask " + d.name + " get the services killed")
		}
	}
	// A slow Postgres is the incident's trigger without the promotion:
	// requests queue for the pool with no deadline, and the probe's ping
	// queues behind them.
	if sc.Injects(scenario.SlowPostgres) {
		j.killed("liveness probes that ask the slowed Postgres get the services killed")
	}
	// The incident's mechanism with the user service as the trigger:
	// each order holds its connection (and its row locks) while it
	// waits on the user service, with no deadline, until the pool is
	// gone and the probe's ping queues behind them.
	if sc.Injects(scenario.SlowUsers) {
		j.killed("a slow user service gets the order service killed: orders hold the pool while they wait on it")
	}
	if sc.Injects(scenario.NATSDown) {
		j.claim(h.EventsLost > 0, "events published after the commit are lost while NATS is down", "%s lost", count(h.EventsLost, "event"))
	}
}

// killed claims the naive shop was killed and restarted, where the replay
// supervised it (not with -target, where the orchestrator restarts out of
// its sight).
func (j *judgement) killed(claim string) {
	if j.pr.Supervised {
		j.claim(j.pr.Headline.Restarts > 0, claim, "%s", count(j.pr.Headline.Restarts, "restart"))
	}
}

// resilient: the shop stays up through the spike and each fault, and
// nothing acknowledged is lost.
func (j *judgement) resilient() {
	h := j.pr.Headline
	if j.spike() {
		j.claim(h.GoodputPct >= 90, "goodput during the spike at or above 90 % of capacity", "%.0f %%", h.GoodputPct)
		j.claim(h.P99Good <= 200, "p99 of successful requests ≤ 200 ms", "%s", report.Millis(h.P99Good))
		j.refusedFast(claimExcessRefusedFast)
	}
	for _, f := range j.sc.Faults {
		switch f.Kind {
		case scenario.PostgresDown:
			// An order never changes, and its copy is cached as it is
			// placed: its owner reads it from there, fresh, not stale.
			j.claim(h.OrderReads > 0 && h.OrderReadsServed == h.OrderReads, "orders placed before the outage are served to their owners",
				"%d of %d reads of an own order answered", h.OrderReadsServed, h.OrderReads)
			j.claim(h.Stale > 0, "products and searches read before the outage are served stale", "%s", count(h.Stale, "stale answer"))
			j.refusedFast(claimOutageRefusedFast)
		case scenario.SlowPostgres:
			j.claim(h.ErrorRate["timeout"] == 0, "no request hangs on the slow database: every one answered within the shoppers' patience",
				"%.2g %% timed out", h.ErrorRate["timeout"])
		case scenario.NATSDown, scenario.RedisDown:
			j.servesThrough("outage")
		case scenario.SlowUsers:
			// The order service asks the user service about a shopper
			// once a minute (the answer cached); when it does, it gives
			// up after 500 ms and goes on from the last answer.
			j.servesThrough("slowness")
		}
	}
	if j.pr.Supervised {
		j.claim(h.Restarts == 0, "zero restarts", "%d", h.Restarts)
	}
	j.claim(h.RecoveryS >= 0 && h.RecoveryS <= 5, "back within 5 s after the spike or the fault ends", "recovery %s", report.Recovery(h.RecoveryS))
	j.claim(len(j.pr.Broken) == 0, "zero oversold, zero missing orders, zero lost or duplicated events",
		"oversold %d, missing %d, events lost %d, twice %d", h.Oversold, h.Missing, h.EventsLost, h.EventsTwice)
}

// refusedFast judges how fast refusals are. That is the service's doing
// from the moment the request reaches it; the shoppers' clock adds the
// network, the kernel's queues and their own process, which on one machine
// share the CPUs with the shop: they send late, and read the answer late.
// The claim is judged where the service controls it, and the shoppers'
// numbers are shown beside it, from when each request was due and from when
// it was sent.
func (j *judgement) refusedFast(text string) {
	h := j.pr.Headline
	byCode := ""
	if len(h.RefusalsServiceByCode) > 0 {
		byCode = " (" + report.RefusalsByCode(h.RefusalsServiceByCode) + ")"
	}
	j.claim(h.P99RefusalService <= 10, text+", timed in the services",
		"%s in the services%s; the shoppers saw %s, %s timed from sending (they sent 1 %% of their requests over %s late; "+
			"the order service's goroutines waited %s for a CPU, p99; the machine's CPUs were %s busy, and some task was waiting for one %s of the time)",
		report.AtMost(h.P99RefusalService), byCode, report.Millis(h.P99Refusal), report.Millis(h.P99RefusalSent), report.Millis(h.P99Lag),
		report.AtMost(h.P99SchedOrder), report.Percent(h.CPUBusyPct), report.Percent(h.CPUWaitingPct))
}

// servesThrough judges a dependency's fault that no shopper's request needs,
// or that its fallbacks cover: the shop serves on.
func (j *judgement) servesThrough(fault string) {
	h := j.pr.Headline
	j.claim(h.GoodputRPS >= 0.9*h.OfferedRPS, "the shop serves through the "+fault+": goodput ≥ 90 % of the traffic offered",
		"%.0f of %.0f requests/s", h.GoodputRPS, h.OfferedRPS)
}

// count is n of a noun, in the singular for one: "1 restart", "3 restarts".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// goneInto says when supervised processes went away (killed, or exited),
// in seconds into the judged window, and the back-off before each came
// back: the kubelet's ladder, which decides whether a naive shop is still
// away when the spike ends or was started again just before it and serves
// the cool-down.
func goneInto(sc *scenario.Scenario, pr report.Profile) string {
	// The timeline's restart counter rises in the second a process goes; the
	// supervisor's "restarting" events, in the same order, say which one.
	var seconds []int
	for _, pt := range pr.Timeline {
		for len(seconds) < pt.Restarts {
			seconds = append(seconds, pt.T)
		}
	}
	from, to := sc.Window()
	var gone []string
	nth := map[string]int{}
	for _, e := range pr.Events {
		if e.What != "restarting" || len(gone) == len(seconds) {
			continue
		}
		nth[e.Service]++
		gone = append(gone, fmt.Sprintf("%d s (%s, back-off %v)", seconds[len(gone)]-secs(from), e.Service, stack.KubeletProbe.Backoff(nth[e.Service])))
	}
	if len(gone) == 0 {
		return ""
	}
	return fmt.Sprintf("; gone %s into the %s, which lasted %d s", strings.Join(gone, ", "), sc.Focus, secs(to-from))
}
