-- Key-value records (DESIGN §4.7), durable before the answer. A delete leaves a tombstone
-- (deleted_at > 0) and an expiry leaves the row, so versions only grow and a late write naming
-- an old version can never match; such rows are reaped after kv.tombstone_ms.
CREATE TABLE IF NOT EXISTS warden_kv (
    k TEXT PRIMARY KEY,
    -- JSON text; '' in a tombstone
    value TEXT NOT NULL,
    version BIGINT NOT NULL,
    -- 0: never expires
    expires_at BIGINT NOT NULL,
    -- 0: live
    deleted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    correlation_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS warden_kv_deleted ON warden_kv (deleted_at);
CREATE INDEX IF NOT EXISTS warden_kv_expires ON warden_kv (expires_at);
