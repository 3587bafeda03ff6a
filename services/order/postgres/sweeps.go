package postgres

import (
	"time"

	"github.com/stampede-shop/stampede/pkg/db"
)

// OutboxKeep is how long a sent event stays in the outbox, to be looked
// into: far past JetStream's duplicate window (10 minutes), within which a
// second publish of it would still be recognised.
const OutboxKeep = 24 * time.Hour

// Sweeps are the order database's housekeeping: sent events once OutboxKeep
// is past, and idempotency keys once expired — a stored answer after its 24
// hours, a claim whose lease ran out (its request, should it come back, finds
// its claim gone, as when another request takes the key over).
var Sweeps = []db.Sweep{
	{Table: "outbox", Key: "id", Column: "sent_at", Keep: OutboxKeep},
	{Table: "idempotency_keys", Key: "user_id, key", Column: "expires_at"},
}
