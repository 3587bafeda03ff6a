// Package fixes is the switch board of DESIGN.md's fix table. Every fix is a
// named switch; code that implements a fix asks the board on each use
// (board.On(fixes.Breaker)) and carries a "// fix: <name>" comment, so the
// curriculum can be grepped and every fix can be flipped at run time without a
// restart.
//
// FIXES accepts "naive" (all off), "resilient" (all on), a comma-separated
// list of names, and ablations: "naive,+breaker" or "resilient,-breaker".
package fixes

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
)

// Name names a fix.
type Name string

// The fixes of DESIGN.md, in its order.
const (
	Timeouts         Name = "timeouts"
	PoolGuard        Name = "pool_guard"
	Breaker          Name = "breaker"
	CacheFallback    Name = "cache_fallback"
	RateLimit        Name = "rate_limit"
	Shedding         Name = "shedding"
	Probes           Name = "probes"
	GracefulShutdown Name = "graceful_shutdown"
	HotRow           Name = "hot_row"
	Outbox           Name = "outbox"
	Recovery         Name = "recovery"
	BodyLimit        Name = "body_limit"
)

// All lists every fix; a fix's bit in a Set is its index here.
var All = []Name{Timeouts, PoolGuard, Breaker, CacheFallback, RateLimit, Shedding,
	Probes, GracefulShutdown, HotRow, Outbox, Recovery, BodyLimit}

// Set is a set of fixes, one bit each.
type Set uint32

// Naive has every fix off; Resilient has every fix on.
const (
	Naive     Set = 0
	Resilient Set = 1<<12 - 1
)

func bit(n Name) (Set, bool) {
	i := slices.Index(All, n)
	if i < 0 {
		return 0, false
	}
	return 1 << i, true
}

// Has reports whether n is in s.
func (s Set) Has(n Name) bool {
	b, ok := bit(n)
	return ok && s&b != 0
}

// Map returns every fix with its state, for JSON.
func (s Set) Map() map[Name]bool {
	m := make(map[Name]bool, len(All))
	for _, n := range All {
		m[n] = s.Has(n)
	}
	return m
}

// String renders s in the form Parse reads.
func (s Set) String() string {
	switch s {
	case Naive:
		return "naive"
	case Resilient:
		return "resilient"
	}
	var on []string
	for _, n := range All {
		if s.Has(n) {
			on = append(on, string(n))
		}
	}
	return strings.Join(on, ",")
}

// UnknownError names a fix that does not exist and lists the ones that do.
type UnknownError struct{ Name string }

func (e *UnknownError) Error() string {
	names := make([]string, len(All))
	for i, n := range All {
		names[i] = string(n)
	}
	return fmt.Sprintf("unknown fix %q; valid: naive, resilient, %s", e.Name, strings.Join(names, ", "))
}

// Parse reads a FIXES value. A list starts from nothing unless its first word
// is a profile; "+name" and "-name" switch one fix on or off.
func Parse(s string) (Set, error) {
	var set Set
	for i, word := range strings.Split(s, ",") {
		word = strings.TrimSpace(word)
		switch {
		case word == "":
			continue
		case i == 0 && word == "naive":
			set = Naive
			continue
		case i == 0 && word == "resilient":
			set = Resilient
			continue
		}
		op := byte('+')
		if word[0] == '+' || word[0] == '-' {
			op, word = word[0], word[1:]
		}
		b, ok := bit(Name(word))
		if !ok {
			return 0, &UnknownError{Name: word}
		}
		if op == '+' {
			set |= b
		} else {
			set &^= b
		}
	}
	return set, nil
}

// Board holds the fixes in force. It is read on every request, so reads are a
// single atomic load; writes are rare and logged.
type Board struct {
	set atomic.Uint32
	log *slog.Logger
}

// NewBoard returns a board with s in force.
func NewBoard(s Set, log *slog.Logger) *Board {
	b := &Board{log: log}
	b.set.Store(uint32(s))
	return b
}

// On reports whether fix n is switched on. A nil board has every fix on, so
// that library code used outside a service behaves resiliently by default.
func (b *Board) On(n Name) bool {
	if b == nil {
		return true
	}
	return Set(b.set.Load()).Has(n)
}

// Current returns the set in force.
func (b *Board) Current() Set { return Set(b.set.Load()) }

// Replace puts s in force and logs what changed and who asked.
func (b *Board) Replace(s Set, who string) {
	old := Set(b.set.Swap(uint32(s)))
	if old == s {
		return
	}
	var on, off []string
	for _, n := range All {
		switch {
		case s.Has(n) && !old.Has(n):
			on = append(on, string(n))
		case !s.Has(n) && old.Has(n):
			off = append(off, string(n))
		}
	}
	b.log.Info("fixes changed", "by", who, "switched_on", on, "switched_off", off, "fixes", s.String())
}
