-- A claim on an idempotency key is named, and lapses: a request that ends
-- between claiming its key and answering without releasing it (its process
-- killed, or the database unreachable for the release) must not hold the key
-- for the key's whole life, turning every retry into 409. While the request
-- is in flight expires_at is the claim's short lease; the answer, stored,
-- gets the key's full life. A request whose lease ran out and was taken over
-- cannot complete under it: its reply is saved only where its claim still is.
ALTER TABLE idempotency_keys ADD COLUMN claim uuid;
