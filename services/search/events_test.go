package main

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

func eventsNames(in *testkit.Instance) events.Names { return events.Orders(in.Env["EVENTS_NAMESPACE"]) }

// publishOrder publishes order.created for qty units of the hot product.
func publishOrder(t *testing.T, js jetstream.JetStream, names events.Names, msgID, eventID string, qty int) {
	t.Helper()
	ev := events.OrderCreated{EventID: eventID, OrderID: "o-" + eventID, UserID: 1, TotalCents: int64(qty) * 99_900,
		Items: []events.Item{{ProductID: 1, Quantity: qty, PriceCents: 99_900}}, OccurredAt: time.Now().UTC()}
	if err := events.Publish(context.Background(), js, names.OrderCreated, msgID, ev); err != nil {
		t.Fatal(err)
	}
}
