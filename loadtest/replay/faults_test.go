package replay

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
)

// stuckShop is a shop whose Postgres can be cut off but not brought back
// (a proxy that died with the fault on, say).
type stuckShop struct {
	stack.Shop
	calls chan bool
}

func (s stuckShop) PostgresDown(down bool) error {
	s.calls <- down
	if !down {
		return errors.New("proxy gone")
	}
	return nil
}

// A fault that could not be ended fails the run: its verdicts would judge
// a run that never saw Postgres come back. What went well is not reported.
func TestAFaultThatCannotEndFailsTheRun(t *testing.T) {
	shop := stuckShop{calls: make(chan bool, 2)}
	fault := scenario.Fault{Kind: scenario.PostgresDown, For: scenario.Duration{Duration: time.Millisecond}}
	failed := scheduleFaults(shop, []scenario.Fault{fault}, io.Discard)
	if first, second := <-shop.calls, <-shop.calls; !first || second {
		t.Fatalf("the fault was switched %v, then %v; want on, then off", first, second)
	}
	var err error
	for deadline := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		err = failed() // the failure is recorded just after the call returns
	}
	if err == nil || !strings.Contains(err.Error(), "(Postgres back): proxy gone") || strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("faults failed: %v; want only the end of the outage, with its cause", err)
	}
}
