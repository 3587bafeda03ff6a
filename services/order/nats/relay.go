// Package nats is the order service's link to NATS JetStream: the outbox
// relay (fix: outbox) and the direct publisher of the naive form.
package nats

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-shop/stampede/pkg/events"
	"github.com/stampede-shop/stampede/services/order/postgres"
)

// Relay moves outbox rows to JetStream until its context ends.
type Relay struct {
	store   *postgres.Store
	js      jetstream.JetStream
	log     *slog.Logger
	nudge   chan struct{}
	pending prometheus.Gauge
	age     prometheus.Gauge
	sent    prometheus.Counter
}

// NewRelay returns a relay; its metrics go on reg.
func NewRelay(store *postgres.Store, js jetstream.JetStream, reg prometheus.Registerer, log *slog.Logger) *Relay {
	r := &Relay{store: store, js: js, log: log, nudge: make(chan struct{}, 1),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_pending", Help: "Outbox events not yet published."}),
		age:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_oldest_age_seconds", Help: "Age of the oldest unpublished outbox event."}),
		sent:    prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_published_total", Help: "Outbox events published."}),
	}
	reg.MustRegister(r.pending, r.age, r.sent)
	return r
}

// Nudge wakes the relay after a commit, so events leave in milliseconds
// rather than at the next tick.
func (r *Relay) Nudge() {
	select {
	case r.nudge <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends. While NATS is down it backs off, doubling the
// wait up to 5 s; rows wait safely in Postgres meanwhile.
func (r *Relay) Run(ctx context.Context) {
	const idle, maxBackoff = 250 * time.Millisecond, 5 * time.Second
	wait := idle
	for {
		n, err := r.Flush(ctx)
		switch {
		case err != nil:
			wait = min(max(2*wait, 100*time.Millisecond), maxBackoff)
			if ctx.Err() == nil {
				r.log.Warn("outbox relay failed; backing off", "error", err, "retry_in", wait)
			}
		case n > 0:
			wait = 0 // more may be waiting
		default:
			wait = idle
		}
		if !r.sleep(ctx, wait, err) {
			return
		}
	}
}

// sleep waits for d, or for a nudge, or for ctx's end (false). After a
// failure a nudge ends the wait only if NATS was what failed and is back:
// during an outage every order placed would otherwise send the relay at the
// broker again at once, and once it returns the next order's events need not
// wait out the back-off.
func (r *Relay) sleep(ctx context.Context, d time.Duration, failed error) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-r.nudge:
			if failed == nil || errors.Is(failed, errNotConnected) && r.js.Conn().IsConnected() {
				return true
			}
		}
	}
}

// errNotConnected is Flush's answer while NATS is out of reach.
var errNotConnected = errors.New("nats: not connected; the events wait in the outbox")

// Flush relays until the outbox is empty or a publish fails. While NATS is
// not connected it claims nothing: a batch it cannot send would hold a
// connection of the pool, and the rows' locks, until its acknowledgements
// time out.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	total := 0
	defer r.report(ctx)
	for {
		if !r.js.Conn().IsConnected() {
			return total, errNotConnected
		}
		n, err := r.store.RelayBatch(ctx, 100, r.publish)
		total += n
		r.sent.Add(float64(n))
		if err != nil || n < 100 {
			return total, err
		}
	}
}

// publish sends the whole batch before it waits, then waits for the broker's
// acknowledgements together: one wait for the batch where publishing one
// event at a time waited once per event, holding the outbox's connection and
// its row locks all along. It returns the rows acknowledged. Should one
// publish fail while later ones succeed, its event is sent again on the next
// run, after them: the consumers add up points and units sold, which does not
// depend on the order the events come in.
func (r *Relay) publish(ctx context.Context, batch []postgres.Pending) (acked []int64, err error) {
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	for _, p := range batch {
		msg := nats.NewMsg(p.Subject)
		msg.Data = p.Payload
		for k, v := range p.Headers { // the W3C trace context of the request that placed the order
			msg.Header.Set(k, v)
		}
		f, perr := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(p.EventID))
		if perr != nil {
			err = perr // too many unacknowledged, or no connection: the rest waits
			break
		}
		futures = append(futures, f)
	}
	// No wait is for ever: the JetStream context fails an acknowledgement
	// that takes longer than events.AckTimeout.
	for i, f := range futures {
		select {
		case <-f.Ok():
			acked = append(acked, batch[i].ID)
		case ferr := <-f.Err():
			err = cmp.Or(err, ferr)
		case <-ctx.Done():
			return acked, ctx.Err()
		}
	}
	return acked, err
}

func (r *Relay) report(ctx context.Context) {
	n, age, err := r.store.Backlog(ctx)
	if err == nil {
		r.pending.Set(float64(n))
		r.age.Set(age.Seconds())
	}
}

// Direct publishes straight to JetStream: the naive form, after the commit.
type Direct struct {
	JS      jetstream.JetStream
	Subject string
}

// Publish sends ev and waits for the acknowledgement.
func (d Direct) Publish(ctx context.Context, ev events.OrderCreated) error {
	return events.Publish(ctx, d.JS, d.Subject, ev.EventID, ev)
}
