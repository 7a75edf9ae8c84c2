-- Correlation end to end (S-PC-04-001): the X-Correlation-Id and W3C traceparent of the request
-- that created an intent, a reservation or an idempotency record are stored with it and handed
-- back to the workers that claim or replay it.
ALTER TABLE warden_intents ADD COLUMN correlation_id TEXT NOT NULL DEFAULT '';
ALTER TABLE warden_intents ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';

-- S-PC-05-001 §8: an intent marked sensitive is not committed while the guard is degraded; it
-- goes to the manual review queue instead.
ALTER TABLE warden_intents ADD COLUMN sensitive BIGINT NOT NULL DEFAULT 0;

-- The request that claimed an idempotency key: a replay of its result names it.
ALTER TABLE warden_idem ADD COLUMN correlation_id TEXT NOT NULL DEFAULT '';
ALTER TABLE warden_idem ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';

-- The request that made a reservation.
ALTER TABLE warden_holds ADD COLUMN correlation_id TEXT NOT NULL DEFAULT '';
ALTER TABLE warden_holds ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
