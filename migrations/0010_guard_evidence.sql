-- What each instance saw during an incident, for the evidence pack (S-PC-05-001 §9.4): the
-- side effects it refused, per minute, with sample keys and correlation ids, and its §10
-- reading once a minute. Rows older than guard.retention_ms are deleted.
CREATE TABLE IF NOT EXISTS warden_refusals (
    minute BIGINT NOT NULL,
    instance TEXT NOT NULL,
    op TEXT NOT NULL,
    reason TEXT NOT NULL,
    count BIGINT NOT NULL,
    -- JSON arrays of the last few refusals of the minute
    sample_keys TEXT NOT NULL,
    sample_correlation_ids TEXT NOT NULL,
    PRIMARY KEY (minute, instance, op, reason)
);

CREATE TABLE IF NOT EXISTS warden_readings (
    at BIGINT NOT NULL,
    instance TEXT NOT NULL,
    operations BIGINT NOT NULL,
    -- fallback share of the answers in the window, per mille
    fallback_permille BIGINT NOT NULL,
    fallback_lock_p95_ms BIGINT NOT NULL,
    primary_lock_p95_ms BIGINT NOT NULL,
    PRIMARY KEY (at, instance)
);

CREATE INDEX IF NOT EXISTS warden_outbox_done ON warden_outbox (done_at);
