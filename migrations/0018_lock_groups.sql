-- Lock groups (DESIGN §4.1): all or nothing over 1–64 keys. The members are ordinary leases;
-- this row names them (JSON `[{"k": name, "t": token, "s": shared}]`) so the group can be
-- extended or released by its id. It is written only once every member is held, and deleted
-- at release (or reaped after it expired).
CREATE TABLE IF NOT EXISTS warden_lock_groups (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    members TEXT NOT NULL,
    ttl_ms BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS warden_lock_groups_expires ON warden_lock_groups (expires_at);
