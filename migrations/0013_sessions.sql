-- Sessions (DESIGN §4.6, G12). A session id is a bearer secret: only its SHA-256 (id_hash) is
-- stored. Rows are never upserted: a write to a missing, ended or expired session changes
-- nothing. An ended session (revoked, rotated, evicted, expired) keeps its row as a tombstone
-- until its absolute expiry has passed by sessions.retention_ms.
CREATE TABLE IF NOT EXISTS warden_sessions (
    id_hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    -- '' for a session without a principal
    principal TEXT NOT NULL,
    -- a JSON object
    data TEXT NOT NULL,
    version BIGINT NOT NULL,
    -- the principal's generation when the session was created ("log out everywhere" bumps it)
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    idle_ttl_ms BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    -- active | revoked | rotated | evicted | expired
    state TEXT NOT NULL,
    ended_at BIGINT NOT NULL,
    -- the successor of a rotated session ('' otherwise)
    rotated_to TEXT NOT NULL,
    -- when a touch was last written (touches are written at most once per idle_ttl_ms / 10)
    touch_written_at BIGINT NOT NULL,
    correlation_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS warden_sessions_principal
    ON warden_sessions (tenant, principal, state, created_at);
CREATE INDEX IF NOT EXISTS warden_sessions_idle ON warden_sessions (state, idle_expires_at);
CREATE INDEX IF NOT EXISTS warden_sessions_absolute ON warden_sessions (absolute_expires_at);

-- One row per principal that ever had a session: its generation, and the lock that makes
-- "count, then admit or evict" atomic.
CREATE TABLE IF NOT EXISTS warden_session_principals (
    tenant TEXT NOT NULL,
    principal TEXT NOT NULL,
    generation BIGINT NOT NULL,
    PRIMARY KEY (tenant, principal)
);

-- The events feed (an outbox): seq is drawn from warden_session_seq inside the transaction
-- that makes the change, so a reader following seq never skips a committed event.
CREATE TABLE IF NOT EXISTS warden_session_events (
    seq BIGINT PRIMARY KEY,
    tenant TEXT NOT NULL,
    -- created | rotated | revoked | expired | evicted
    kind TEXT NOT NULL,
    id_hash TEXT NOT NULL,
    principal TEXT NOT NULL,
    at BIGINT NOT NULL,
    correlation_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS warden_session_events_tenant ON warden_session_events (tenant, seq);

CREATE TABLE IF NOT EXISTS warden_session_seq (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL
);
INSERT INTO warden_session_seq (id, seq) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
