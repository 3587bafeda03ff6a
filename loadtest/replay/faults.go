package replay

// A scenario's faults: switched on and off on time while the load runs.

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
)

// scheduleFaults switches each fault on at its time and off at its end,
// counted from now, and prints each switch. The function it returns tells
// which switches failed: a fault that could not be injected (or ended)
// fails the run, whose verdicts would judge a run without it.
func scheduleFaults(st stack.Shop, faults []scenario.Fault, progress io.Writer) (failed func() error) {
	var mu sync.Mutex
	var errs []error
	for _, f := range faults {
		on, off := faultSwitch(st, f)
		apply := func(s faultStep, prefix string) {
			if err := s.do(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s %s%s: %w", f.Kind, prefix, s.what, err))
				mu.Unlock()
				fmt.Fprintf(progress, "    ⚡ %s %s%s FAILED: %v\n", f.Kind, prefix, s.what, err)
				return
			}
			fmt.Fprintf(progress, "    ⚡ %s %s%s\n", f.Kind, prefix, s.what)
		}
		time.AfterFunc(f.At.Duration, func() { apply(on, "") })
		time.AfterFunc(f.At.Duration+f.For.Duration, func() { apply(off, "over ") })
	}
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		return errors.Join(errs...)
	}
}

// faultStep is one half of a fault: what it does, for the progress, and
// doing it.
type faultStep struct {
	what string
	do   func() error
}

// faultSwitch returns what injects fault f and what ends it.
func faultSwitch(st stack.Shop, f scenario.Fault) (on, off faultStep) {
	switch f.Kind {
	case scenario.PostgresDown:
		return faultStep{"(Postgres unreachable)", func() error { return st.PostgresDown(true) }},
			faultStep{"(Postgres back)", func() error { return st.PostgresDown(false) }}
	case scenario.SlowPostgres:
		return faultStep{fmt.Sprintf("(Postgres +%v)", f.Latency.Duration), func() error { return st.SlowPostgres(f.Latency.Duration) }},
			faultStep{"(Postgres fast again)", func() error { return st.SlowPostgres(0) }}
	case scenario.NATSDown:
		return faultStep{"(NATS unreachable)", func() error { return st.NATSDown(true) }},
			faultStep{"(NATS back)", func() error { return st.NATSDown(false) }}
	case scenario.RedisDown:
		return faultStep{"(Redis silent)", func() error { return st.RedisDown(true) }},
			faultStep{"(Redis back)", func() error { return st.RedisDown(false) }}
	default:
		return faultStep{fmt.Sprintf("(user service +%v)", f.Latency.Duration), func() error { return st.SlowUsers(f.Latency.Duration) }},
			faultStep{"(user service fast again)", func() error { return st.SlowUsers(0) }}
	}
}
