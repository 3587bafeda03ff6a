// Package nats feeds order.created events from JetStream to the products
// service, which counts them as sold.
package nats

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/services/search/products"
)

// ConsumeSold starts the durable "search-sold" consumer. Each event is acked
// only after ApplyOrderCreated has committed; the returned stop drains it.
func ConsumeSold(ctx context.Context, js jetstream.JetStream, names events.Names, svc *products.Service, log *slog.Logger) (stop func(), err error) {
	return events.Consume(ctx, js, names.Stream, products.SoldConsumer, names.OrderCreated, log,
		func(ctx context.Context, data []byte) error {
			var ev events.OrderCreated
			if err := events.Decode(data, &ev); err != nil {
				return err
			}
			return svc.ApplyOrderCreated(ctx, ev)
		})
}
