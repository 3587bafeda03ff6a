package nats

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
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
