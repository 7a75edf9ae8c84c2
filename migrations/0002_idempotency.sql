-- Idempotency records (G4): the durable truth. Redis holds a hot copy; every claim and every
-- completion is written here before it is answered, so SQL arbitrates between tiers.
CREATE TABLE IF NOT EXISTS warden_idem (
    idem_key TEXT PRIMARY KEY,
    -- in_progress | completed | released
    state TEXT NOT NULL DEFAULT 'in_progress',
    token BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- the saved response, exactly as the client sent it (JSON text)
    response TEXT
);
CREATE INDEX IF NOT EXISTS warden_idem_expires ON warden_idem (expires_at);

-- Named monotonic values. `idem_floor`: the highest token of any reaped idempotency record, so
-- a record created again after reaping never repeats a token of its earlier life.
CREATE TABLE IF NOT EXISTS warden_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO warden_counters (name, value) VALUES ('idem_floor', 0) ON CONFLICT (name) DO NOTHING;
