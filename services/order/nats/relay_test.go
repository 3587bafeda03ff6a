package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
	"github.com/stampede-shop/stampede/services/order/migrations"
	"github.com/stampede-shop/stampede/services/order/postgres"
)

// The relay publishes a batch at once and reports exactly what JetStream
// acknowledged: an event whose subject no stream takes fails alone, the ones
// after it still go. Sent again (a relay that crashed before its commit), the
// acknowledged ones are stored once, by their Nats-Msg-Id.
func TestPublishReportsWhatJetStreamAcknowledged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js, ns := testkit.NATS(t)
	names := events.Orders(ns)
	if err := events.EnsureOrdersStream(ctx, js, names); err != nil {
		t.Fatal(err)
	}
	r := NewRelay(nil, js, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	trace := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	batch := []postgres.Pending{
		{ID: 1, EventID: ns + "-1", Subject: names.OrderCreated, Payload: []byte(`{"n":1}`), Headers: trace},
		{ID: 2, EventID: ns + "-2", Subject: ns + ".nowhere", Payload: []byte(`{"n":2}`)},
		{ID: 3, EventID: ns + "-3", Subject: names.OrderCreated, Payload: []byte(`{"n":3}`)},
	}
	for run := range 2 {
		acked, err := r.publish(ctx, batch)
		if err == nil || !slices.Equal(acked, []int64{1, 3}) {
			t.Fatalf("run %d: acknowledged %v, %v; want [1 3] and the failure of 2", run, acked, err)
		}
	}

	stream, err := js.Stream(ctx, names.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("%d messages in the stream, want 2: each acknowledged event once", info.State.Msgs)
	}
	first, err := stream.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	if first.Header.Get(jetstream.MsgIDHeader) != ns+"-1" || first.Header.Get("traceparent") != trace["traceparent"] || string(first.Data) != `{"n":1}` {
		t.Fatalf("first message %v %s, want event 1 with its Nats-Msg-Id and trace context", first.Header, first.Data)
	}
}

// BenchmarkPublish relays a batch of 100 events to a real JetStream: one at a
// time, each publish waiting for its acknowledgement (as the relay did), and
// all at once with the acknowledgements awaited together (as it does). The
// outbox's connection and row locks are held for as long as it takes.
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	js, ns := testkit.NATS(b)
	names := events.Orders(ns)
	if err := events.EnsureOrdersStream(ctx, js, names); err != nil {
		b.Fatal(err)
	}
	r := NewRelay(nil, js, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	batch := make([]postgres.Pending, 100)
	next := 0
	fill := func() {
		for i := range batch {
			next++
			batch[i] = postgres.Pending{ID: int64(i), EventID: fmt.Sprint(ns, "-", next), Subject: names.OrderCreated, Payload: []byte(`{"order_id":"x"}`)}
		}
	}
	b.Run("one at a time", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			fill()
			b.StartTimer()
			for _, p := range batch {
				msg := nats.NewMsg(p.Subject)
				msg.Data = p.Payload
				if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(p.EventID)); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(batch)), "µs/event")
	})
	b.Run("the batch at once", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			fill()
			b.StartTimer()
			if acked, err := r.publish(ctx, batch); err != nil || len(acked) != len(batch) {
				b.Fatalf("%d acknowledged, %v", len(acked), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(batch)), "µs/event")
	})
}

// NATS out of reach while orders keep nudging the relay: it claims no row it
// cannot send (the outbox is never locked), and the nudges do not cut its
// back-off short (a few attempts, not one per order). Once NATS is back,
// every event goes, once.
func TestRelayWaitsOutAnOutage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testkit.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	store, d := outboxStore(t)
	proxy := testkit.NewProxy(t, strings.TrimPrefix(testkit.NATSURL(), "nats://"), true)
	nc, js, err := events.Connect("nats://"+proxy.Addr, "relay-test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	_, ns := testkit.NATS(t) // the namespace, and its streams deleted after
	names := events.Orders(ns)
	if err := events.EnsureOrdersStream(ctx, js, names); err != nil {
		t.Fatal(err)
	}

	proxy.SetUp(false)
	for deadline := time.Now().Add(10 * time.Second); nc.IsConnected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still connected to NATS 10 s after the proxy dropped the connection")
		}
	}
	const pending = 30
	for range pending {
		if _, err := d.SQL().Exec(`INSERT INTO outbox (event_id, subject, payload) VALUES ($1, $2, '{}')`, uuid.NewString(), names.OrderCreated); err != nil {
			t.Fatal(err)
		}
	}
	r := NewRelay(store, js, prometheus.NewRegistry(), log)
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Three seconds of orders, one every 10 ms, each nudging the relay; the
	// outbox's rows are never held meanwhile.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		r.Nudge()
		if err := lockOutbox(d); err != nil {
			t.Fatalf("the outbox while NATS is down: %v, want its rows free", err)
		}
	}
	if attempts := strings.Count(logs.String(), "backing off"); attempts < 1 || attempts > 8 {
		t.Fatalf("%d attempts in 3 s of outage, each order nudging; want a few, spaced by the back-off", attempts)
	}

	proxy.SetUp(true)
	stream, err := js.Stream(ctx, names.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		info, err := stream.Info(ctx)
		if err == nil && info.State.Msgs == pending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events in the stream after NATS returned: %+v %v, want %d", info, err, pending)
		}
	}
}

// lockOutbox takes and at once releases the locks of the unsent rows, or
// fails if another transaction holds one.
func lockOutbox(d *db.DB) error {
	tx, err := d.SQL().Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a read: nothing to keep
	_, err = tx.Exec(`SELECT id FROM outbox WHERE sent_at IS NULL FOR UPDATE NOWAIT`)
	return err
}

// outboxStore is the order service's store on a fresh database, and the
// database itself for the test's own statements.
func outboxStore(t *testing.T) (*postgres.Store, *db.DB) {
	t.Helper()
	d := testkit.MigratedDB(t, migrations.FS, nil, config.DB{MaxOpen: 4})
	return postgres.NewStore(d, "order.created"), d
}

// Between runs the relay sleeps until its timer, its context's end or a
// nudge; after a failure a nudge wakes it only if NATS was what failed and is
// back. (The timer here is an hour: what ends the sleep is the nudge, or the
// context cancelled after it.)
func TestANudgeWakesTheRelayUnlessItIsBackingOff(t *testing.T) {
	t.Parallel()
	js, _ := testkit.NATS(t) // connected
	r := NewRelay(nil, js, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, c := range []struct {
		name   string
		failed error
		woken  bool
	}{
		{"after a run that went well", nil, true},
		{"after NATS failed, now back", errNotConnected, true},
		{"after the database failed", errors.New("the database is busy"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r.Nudge()
			time.AfterFunc(200*time.Millisecond, cancel)
			if woken := r.sleep(ctx, time.Hour, c.failed); woken != c.woken {
				t.Fatalf("woken by the nudge: %v, want %v", woken, c.woken)
			}
		})
	}
}
