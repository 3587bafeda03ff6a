package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/stampede-shop/stampede/pkg/db"
)

// StreamMaxAge is how long the ORDERS stream keeps an event, and so how long a
// consumer keeps its record of an event it handled (HandledSweep): the stream
// redelivers nothing older, and the outbox relay sends an event again only
// until its row is marked sent — at its next run after a crash.
const StreamMaxAge = 7 * 24 * time.Hour

// HandledSweep deletes a consumer's records of handled events (the
// processed_events table each consuming service keeps) once the stream can no
// longer deliver the event again.
var HandledSweep = db.Sweep{Table: "processed_events", Key: "consumer, event_id", Column: "processed_at", Keep: StreamMaxAge}

// AckTimeout bounds the wait for JetStream's acknowledgement of a message
// published asynchronously: past it, the publish fails (by default it would
// wait for ever, and so would whoever waits on it).
const AckTimeout = 2 * time.Second

// Connect dials NATS and keeps reconnecting for ever, logging each change of
// connection state. It returns at once even when NATS is down: the first
// connection is retried in the background, and readiness reports it.
func Connect(url, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.Timeout(2*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: we closed it ourselves
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("events: connect: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(AckTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("events: jetstream: %w", err)
	}
	return nc, js, nil
}

// Check is a health check: connected, and JetStream answers.
func Check(nc *nats.Conn, js jetstream.JetStream) func(context.Context) error {
	return func(ctx context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return fmt.Errorf("nats is %s", s)
		}
		_, err := js.AccountInfo(ctx)
		return err
	}
}

// EnsureOrdersStream creates or updates the ORDERS stream.
func EnsureOrdersStream(ctx context.Context, js jetstream.JetStream, names Names) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     names.Stream,
		Subjects: []string{names.OrderCreated},
		Storage:  jetstream.FileStorage,
		MaxAge:   StreamMaxAge,
		// Publishes with the same Nats-Msg-Id within this window are stored
		// once: the relay may publish an event again after a crash.
		Duplicates: 10 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("events: ensure stream %s: %w", names.Stream, err)
	}
	return nil
}

// Publish sends v as JSON with Nats-Msg-Id = eventID and the W3C trace context
// of ctx in the headers, and waits for JetStream's acknowledgement.
func Publish(ctx context.Context, js jetstream.JetStream, subject, eventID string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("events: encode: %w", err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(msg.Header))
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(eventID)); err != nil {
		return fmt.Errorf("events: publish %s: %w", subject, err)
	}
	return nil
}

// ErrPermanent marks a message that can never be handled (it does not decode,
// say). It is terminated instead of redelivered for ever.
var ErrPermanent = errors.New("permanent")

// Handler handles one message. It returns nil only after its own commit: the
// message is acked after that, never before, so a crash between the two means
// a redelivery, which the handler's idempotency absorbs.
type Handler func(ctx context.Context, data []byte) error

// Consume starts a durable consumer of subject on stream. The returned stop
// function drains it: messages in flight finish, no new ones are taken.
func Consume(ctx context.Context, js jetstream.JetStream, stream, durable, subject string, log *slog.Logger, handle Handler) (stop func(), err error) {
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1, // an event is never dropped; a poison one is terminated by the handler
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("events: consumer %s: %w", durable, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		mctx := otel.GetTextMapPropagator().Extract(context.Background(), propagation.HeaderCarrier(msg.Headers()))
		err := handle(mctx, msg.Data())
		switch {
		case err == nil:
			if err := msg.Ack(); err != nil {
				log.WarnContext(mctx, "ack failed; the event will be redelivered", "consumer", durable, "error", err)
			}
		case errors.Is(err, ErrPermanent):
			log.ErrorContext(mctx, "event cannot be handled; terminated", "consumer", durable, "error", err)
			_ = msg.Term()
		default:
			log.WarnContext(mctx, "event handling failed; will retry", "consumer", durable, "error", err)
			_ = msg.NakWithDelay(time.Second)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("events: consume %s: %w", durable, err)
	}
	return func() { cc.Drain(); <-cc.Closed() }, nil
}

// Decode decodes data into v, marking failures permanent.
func Decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: decode: %w", ErrPermanent, err)
	}
	return nil
}

// ConsumeOrderCreated starts the durable consumer durable of order.created,
// decoding each event for apply. An event that does not decode is terminated;
// apply returning nil acks, after its own commit.
func ConsumeOrderCreated(ctx context.Context, js jetstream.JetStream, names Names, durable string, log *slog.Logger,
	apply func(context.Context, OrderCreated) error) (stop func(), err error) {
	return Consume(ctx, js, names.Stream, durable, names.OrderCreated, log, func(ctx context.Context, data []byte) error {
		var ev OrderCreated
		if err := Decode(data, &ev); err != nil {
			return err
		}
		return apply(ctx, ev)
	})
}
