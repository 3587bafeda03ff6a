// Package events carries Stampede's domain events over NATS JetStream: the
// event types of DESIGN.md, connecting with reconnect, declaring the stream,
// publishing with de-duplication ids, and consuming with durable consumers
// that ack only after the handler has committed.
package events

import (
	"time"
)

// OrderCreated is published by the order service (through its outbox) and
// consumed by the user service (points) and the search service (sold counts).
type OrderCreated struct {
	EventID    string    `json:"event_id"` // also the Nats-Msg-Id: JetStream drops a re-publish
	OrderID    string    `json:"order_id"`
	UserID     int64     `json:"user_id"`
	Items      []Item    `json:"items"`
	TotalCents int64     `json:"total_cents"`
	OccurredAt time.Time `json:"occurred_at"`
}

// Item is one line of an order.
type Item struct {
	ProductID  int64 `json:"product_id"`
	Quantity   int   `json:"quantity"`
	PriceCents int64 `json:"price_cents"`
}

// Names are the stream and subject names, possibly namespaced.
type Names struct {
	Stream       string
	OrderCreated string
}

// Orders returns the names of the ORDERS stream. Deployments use the empty
// namespace (stream ORDERS, subject order.created); tests pass their own so
// that parallel tests never read each other's events.
func Orders(namespace string) Names {
	if namespace == "" {
		return Names{Stream: "ORDERS", OrderCreated: "order.created"}
	}
	return Names{Stream: namespace + "_ORDERS", OrderCreated: namespace + ".order.created"}
}
