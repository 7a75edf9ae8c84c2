-- Shared leases (DESIGN §4.1). A key's row keeps its exclusive lease (owner, token,
-- expires_at) and the counter every grant of the key draws from; `drawn` is the last token
-- drawn, exclusive or shared, so the counter restarts only at a new epoch. `shared_until` is
-- the latest expiry of a live shared lease (lowered when one is released), so an exclusive
-- grant checks it in its own statement; `writer_until` marks a waiting writer (`writer`),
-- before whom no new shared lease is granted.
ALTER TABLE warden_locks ADD COLUMN drawn BIGINT NOT NULL DEFAULT 0;
UPDATE warden_locks SET drawn = token;
ALTER TABLE warden_locks ADD COLUMN shared_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE warden_locks ADD COLUMN writer_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE warden_locks ADD COLUMN writer TEXT NOT NULL DEFAULT '';

-- One row per shared grant; an ended one keeps its row (expires_at 0 after a release) until
-- reaped, so a late extend or release learns it ended rather than that it never existed.
CREATE TABLE IF NOT EXISTS warden_lock_shares (
    lock_key TEXT NOT NULL,
    token BIGINT NOT NULL,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (lock_key, token)
);
CREATE INDEX IF NOT EXISTS warden_lock_shares_owner ON warden_lock_shares (lock_key, owner);
CREATE INDEX IF NOT EXISTS warden_lock_shares_expires ON warden_lock_shares (expires_at);
