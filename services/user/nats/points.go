// Package nats feeds order.created events from JetStream to the account
// service, which turns them into loyalty points.
package nats

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/services/user/account"
)

// ConsumePoints starts the durable "user-points" consumer. Each event is
// acked only after ApplyOrderCreated has committed; the returned stop drains it.
func ConsumePoints(ctx context.Context, js jetstream.JetStream, names events.Names, svc *account.Service, log *slog.Logger) (stop func(), err error) {
	return events.Consume(ctx, js, names.Stream, account.PointsConsumer, names.OrderCreated, log,
		func(ctx context.Context, data []byte) error {
			var ev events.OrderCreated
			if err := events.Decode(data, &ev); err != nil {
				return err
			}
			return svc.ApplyOrderCreated(ctx, ev)
		})
}
