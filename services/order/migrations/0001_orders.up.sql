-- Stock per product, seeded from the shared catalog (pkg/catalog). The CHECK
-- is the last line against overselling: whatever the code does, the
-- database refuses a negative stock.
CREATE TABLE inventory (
    product_id bigint      PRIMARY KEY,
    stock      bigint      NOT NULL CHECK (stock >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          uuid        PRIMARY KEY,
    user_id     bigint      NOT NULL,
    status      text        NOT NULL,
    total_cents bigint      NOT NULL CHECK (total_cents >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The caller's orders, newest first, cut on a keyset.
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at DESC, id DESC);

CREATE TABLE order_items (
    order_id    uuid   NOT NULL REFERENCES orders (id),
    product_id  bigint NOT NULL,
    quantity    int    NOT NULL CHECK (quantity > 0),
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (order_id, product_id)
);

-- One row per (user, Idempotency-Key). The first request inserts it and owns
-- it; a repeat finds it and gets the stored answer. Rows expire (expires_at)
-- and are reclaimed when the key is used again.
CREATE TABLE idempotency_keys (
    user_id      bigint      NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    status       int,        -- NULL while the first request is in flight
    response     bytea,      -- the exact bytes first sent, replayed as they were
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- The transactional outbox: written in the order's transaction, relayed to
-- NATS JetStream afterwards, marked sent once JetStream has acknowledged.
CREATE TABLE outbox (
    id         bigserial   PRIMARY KEY,
    event_id   uuid        NOT NULL UNIQUE,
    subject    text        NOT NULL,
    payload    jsonb       NOT NULL,
    headers    jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
