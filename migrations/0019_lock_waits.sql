-- The wait-for graph of lock waiters (DESIGN §4.1 deadlocks), shared by every instance: one row
-- per owner waiting on a key, naming who held it at its last try. Rows are refreshed while
-- the wait goes on (`seen_at`), stamped with the epoch, and deleted when it ends; a victim is
-- marked here (`victim`, `cycle`) for its own instance to answer `deadlock_detected`. Owners
-- are stored with their tenant's prefix, so tenants never form a cycle together.
CREATE TABLE IF NOT EXISTS warden_lock_waits (
    waiter TEXT NOT NULL,
    lock_key TEXT NOT NULL,
    holder TEXT NOT NULL,
    priority BIGINT NOT NULL,
    since BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    seen_at BIGINT NOT NULL,
    victim BIGINT NOT NULL DEFAULT 0,
    cycle TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (waiter, lock_key)
);
CREATE INDEX IF NOT EXISTS warden_lock_waits_seen ON warden_lock_waits (seen_at);
