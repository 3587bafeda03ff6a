CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Ids come from the shared catalog generator (pkg/catalog), so the search
-- and order services agree on them without talking to each other.
CREATE TABLE products (
    id          bigint      PRIMARY KEY,
    sku         text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    category    text        NOT NULL,
    price_cents bigint      NOT NULL CHECK (price_cents > 0),
    currency    text        NOT NULL DEFAULT 'EUR',
    sold        bigint      NOT NULL DEFAULT 0 CHECK (sold >= 0),
    in_stock    bigint      NOT NULL DEFAULT 0 CHECK (in_stock >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- The name weighs more than the description in the ranking (A over B).
    search      tsvector    GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', name), 'A') ||
                    setweight(to_tsvector('english', description), 'B')) STORED
);

CREATE INDEX products_search_idx ON products USING GIN (search);
CREATE INDEX products_name_trgm_idx ON products USING GIN (name gin_trgm_ops);
CREATE INDEX products_category_price_idx ON products (category, price_cents);

-- Events this service has applied, written in the same transaction as their
-- effect (see the order.created consumer).
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
