DROP INDEX idempotency_keys_expires_idx;
DROP INDEX outbox_sent_idx;
