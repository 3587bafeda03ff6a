-- The housekeeping sweeps (postgres.Sweeps) find what is past its use by
-- these columns, a batch at a time: without an index each batch would read
-- the whole table.
CREATE INDEX outbox_sent_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
