package events_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// ordersStream declares an ORDERS stream in a namespace of the test's own.
func ordersStream(t *testing.T) (jetstream.JetStream, events.Names) {
	t.Helper()
	js, ns := testkit.NATS(t)
	names := events.Orders(ns)
	if err := events.EnsureOrdersStream(context.Background(), js, names); err != nil {
		t.Fatal(err)
	}
	return js, names
}

func TestPublishIsDeduplicatedAndConsumed(t *testing.T) {
	t.Parallel()
	js, names := ordersStream(t)
	ctx := context.Background()
	ev := events.OrderCreated{EventID: "ev-1", OrderID: "o-1", UserID: 7, TotalCents: 1234, OccurredAt: time.Now().UTC()}
	for range 3 { // the relay retrying after a crash
		if err := events.Publish(ctx, js, names.OrderCreated, ev.EventID, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := events.Publish(ctx, js, names.OrderCreated, "ev-2", events.OrderCreated{EventID: "ev-2"}); err != nil {
		t.Fatal(err)
	}
	info, err := js.Stream(ctx, names.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("stream holds %d messages, want 2 (same Nats-Msg-Id stored once)", n)
	}

	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	stop, err := events.Consume(ctx, js, names.Stream, "test", names.OrderCreated, quiet, func(ctx context.Context, data []byte) error {
		var e events.OrderCreated
		if err := events.Decode(data, &e); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e.EventID)
		if len(got) == 2 {
			close(done)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("events not consumed")
	}
	stop()
	if fmt.Sprint(got) != "[ev-1 ev-2]" {
		t.Fatalf("consumed %v", got)
	}
}

func TestFailedHandlingIsRedeliveredAndPoisonIsTerminated(t *testing.T) {
	t.Parallel()
	js, names := ordersStream(t)
	ctx := context.Background()
	if err := events.Publish(ctx, js, names.OrderCreated, "retry-me", events.OrderCreated{EventID: "retry-me"}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, names.OrderCreated, []byte("not json")); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	attempts := map[string]int{}
	poison := 0
	handled := make(chan struct{})
	stop, err := events.Consume(ctx, js, names.Stream, "test", names.OrderCreated, quiet, func(ctx context.Context, data []byte) error {
		var e events.OrderCreated
		if err := events.Decode(data, &e); err != nil {
			mu.Lock()
			poison++
			mu.Unlock()
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		attempts[e.EventID]++
		if attempts[e.EventID] == 1 {
			return errors.New("database busy") // transient: must come back
		}
		close(handled)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case <-handled:
	case <-time.After(15 * time.Second):
		t.Fatal("a failed event was not redelivered")
	}
	time.Sleep(1500 * time.Millisecond) // a poison message would be back by now if it were nak'ed
	mu.Lock()
	defer mu.Unlock()
	if poison != 1 {
		t.Fatalf("the undecodable message was seen %d times, want once (terminated)", poison)
	}
}
