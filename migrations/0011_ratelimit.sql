-- Rate-limit policies (DESIGN §4.5). `name` is the stored policy key (tenant included).
-- `version` moves only on a policy save (clients send it back in If-Match); `revision` moves on
-- every save of the policy or one of its overrides, so instances know their copy is stale.
CREATE TABLE IF NOT EXISTS warden_ratelimit_policies (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    version BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Per-subject limits of one policy (for example 18/min for one clinic).
CREATE TABLE IF NOT EXISTS warden_ratelimit_overrides (
    policy TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (policy, subject)
);

-- The instance lease table: every instance renews its row; live instances divide a limit
-- between them while the limits run in each instance's memory (`local` mode).
CREATE TABLE IF NOT EXISTS warden_instances (
    id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);

-- Decisions taken in `local` mode, flushed in aggregate (one row per policy and instance,
-- added to every few seconds): SQL gets no write per check.
CREATE TABLE IF NOT EXISTS warden_ratelimit_usage (
    policy TEXT NOT NULL,
    instance TEXT NOT NULL,
    allowed BIGINT NOT NULL,
    limited BIGINT NOT NULL,
    flushed_at BIGINT NOT NULL,
    PRIMARY KEY (policy, instance)
);
