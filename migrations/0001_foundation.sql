-- Tier state shared by every instance on this database (G1, G2): one row.
CREATE TABLE IF NOT EXISTS warden_tier (
    id INTEGER PRIMARY KEY,
    tier TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    grants_from BIGINT NOT NULL,
    reason TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    max_ttl_ms BIGINT NOT NULL,
    redis_armed_epoch BIGINT NOT NULL
);
INSERT INTO warden_tier (id, tier, epoch, grants_from, reason, changed_at, max_ttl_ms, redis_armed_epoch)
VALUES (1, 'sql', 1, 0, 'init', 0, 0, 0)
ON CONFLICT (id) DO NOTHING;

-- Lock leases granted by the SQL tier; rows are kept after release so `counter` never resets.
CREATE TABLE IF NOT EXISTS warden_locks (
    lock_key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    counter BIGINT NOT NULL,
    token BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS warden_locks_expires ON warden_locks (expires_at);

-- Highest fencing token seen per resource (durable: a reset would let a stale token pass).
CREATE TABLE IF NOT EXISTS warden_fences (
    resource TEXT PRIMARY KEY,
    highest BIGINT NOT NULL
);
