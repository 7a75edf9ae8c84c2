-- The live-sessions gauge counts active sessions per tenant every few seconds on every instance.
-- With the tenant in the idle-expiry index the count reads the index alone (an index-only scan
-- on PostgreSQL; 1M sessions: 68 ms against 160-183 ms through the table). The sweeper's range
-- (state, idle_expires_at) is this index's prefix, so it replaces the narrower one.
CREATE INDEX IF NOT EXISTS warden_sessions_idle_tenant
    ON warden_sessions (state, idle_expires_at, tenant);
DROP INDEX IF EXISTS warden_sessions_idle;
