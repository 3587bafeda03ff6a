-- Emails are stored normalised (trimmed, lower-case) by the application, so a
-- plain unique constraint is the duplicate check, race-free.
CREATE TABLE users (
    id            bigserial   PRIMARY KEY,
    email         text        NOT NULL UNIQUE,
    name          text        NOT NULL,
    password_hash bytea       NOT NULL,
    points        bigint      NOT NULL DEFAULT 0 CHECK (points >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Every event a consumer has applied, written in the same transaction as its
-- effect: a redelivered event finds its id here and changes nothing.
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
