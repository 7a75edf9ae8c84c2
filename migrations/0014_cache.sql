-- Cache invalidations made while the cache is failed over to SQL (DESIGN §4.8): cache entries
-- live in Redis only, so a delete, tag or namespace invalidation made while Redis is away is
-- kept here and applied to Redis when it serves again (replayed > 0 once applied).
CREATE TABLE IF NOT EXISTS warden_cache_invalidations (
    id TEXT PRIMARY KEY,
    ns TEXT NOT NULL,
    -- 'key', 'tag' or 'namespace'
    kind TEXT NOT NULL,
    -- the key or tag ('' for a namespace)
    target TEXT NOT NULL,
    at BIGINT NOT NULL,
    replayed BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS warden_cache_invalidations_pending ON warden_cache_invalidations (replayed);
