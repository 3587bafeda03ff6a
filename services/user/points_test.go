package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(testkit.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// publishOrder publishes order.created as the order service's relay does.
func publishOrder(t *testing.T, in *instance, eventID string, userID, cents int64) {
	t.Helper()
	publishWithMsgID(t, in, eventID, eventID, userID, cents)
}

func publishWithMsgID(t *testing.T, in *instance, msgID, eventID string, userID, cents int64) {
	t.Helper()
	ev := events.OrderCreated{EventID: eventID, OrderID: "o-" + eventID, UserID: userID, TotalCents: cents, OccurredAt: time.Now().UTC(),
		Items: []events.Item{{ProductID: 1, Quantity: 1, PriceCents: cents}}}
	if err := events.Publish(context.Background(), jetStream(t), events.Orders(in.Env["EVENTS_NAMESPACE"]).OrderCreated, msgID, ev); err != nil {
		t.Fatal(err)
	}
}

func points(t *testing.T, in *instance, id int64) int64 {
	t.Helper()
	r := in.Do(t, "GET", fmt.Sprintf("/internal/v1/users/%d", id), "", "")
	if r.Status != http.StatusOK {
		t.Fatalf("user %d: %d %s", id, r.Status, r.Raw)
	}
	return int64(r.Body["points"].(float64))
}

func waitPoints(t *testing.T, in *instance, id, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if points(t, in, id) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("user %d has %d points, want %d\n%s", id, points(t, in, id), want, in.Logs.String())
}

func TestSameEventTwiceAddsPointsOnce(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := in.register(t, "pat@example.com")

	publishOrder(t, in, "ev-1", id, 1999) // 19 points: 1 per 100 cents, rounded down
	// The same event again with the same Nats-Msg-Id (JetStream drops it), and
	// again under a new message id, as after the dedup window: the consumer's
	// own record of handled ids must catch that one.
	publishOrder(t, in, "ev-1", id, 1999)
	publishWithMsgID(t, in, "ev-1-redelivered", "ev-1", id, 1999)
	// A second, different order; once its points show, everything before it
	// was handled (the consumer takes the stream in order).
	publishOrder(t, in, "ev-2", id, 500)

	waitPoints(t, in, id, 19+5)
	time.Sleep(200 * time.Millisecond)
	if got := points(t, in, id); got != 24 {
		t.Fatalf("points %d, want 24: the duplicate was applied", got)
	}
}

func TestEventForUnknownUserDoesNotBlockTheStream(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := in.register(t, "quinn@example.com")
	publishOrder(t, in, "ev-ghost", 999999, 10000) // no such user: terminated, not retried for ever
	publishOrder(t, in, "ev-real", id, 300)
	waitPoints(t, in, id, 3)
}
