-- Access tokens (G9). Only a SHA-256 hash of each secret is stored; the secret itself is shown
-- once, at creation. Rows are never deleted (a revocation sets revoked_at), so "a token was
-- ever created" is simply "a row exists", which ends protected mode for good.
CREATE TABLE IF NOT EXISTS warden_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    -- space-separated scope names
    scopes TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- 0: never expires
    expires_at BIGINT NOT NULL DEFAULT 0,
    -- 0: not revoked
    revoked_at BIGINT NOT NULL DEFAULT 0,
    -- 0: never used; written at most once a minute per token
    last_used_at BIGINT NOT NULL DEFAULT 0
);
