-- The operational guard (G10): incidents, the shared guard state, recovery actions, the
-- notification outbox and a hash-chained audit trail. Every change of these is written in one
-- transaction with its audit entry and its outbox rows.

-- The guard state every instance acts on travels with the tier row, so it is read under the
-- same tier lease (an instance that cannot renew it stops granting).
ALTER TABLE warden_tier ADD COLUMN guard TEXT NOT NULL DEFAULT 'normal';

-- The guard's details: one row.
CREATE TABLE IF NOT EXISTS warden_guard (
    id INTEGER PRIMARY KEY,
    -- the current safe-mode episode ('' when none)
    episode TEXT NOT NULL,
    since BIGINT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    -- start of the current continuously green window while recovering (0: none)
    green_since BIGINT NOT NULL,
    -- last health sample (epoch ms) and whether it was green
    sampled_at BIGINT NOT NULL,
    sample_green BIGINT NOT NULL
);
INSERT INTO warden_guard (id, episode, since, reason, actor, green_since, sampled_at, sample_green)
VALUES (1, '', 0, 'init', 'warden', 0, 0, 1)
ON CONFLICT (id) DO NOTHING;

-- Incidents: one open incident per (tenant, dedup_key).
CREATE TABLE IF NOT EXISTS warden_incidents (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    -- triggered | acknowledged | resolved
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    summary TEXT NOT NULL,
    source TEXT NOT NULL,
    details TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    traceparent TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    acked_at BIGINT NOT NULL DEFAULT 0,
    acked_by TEXT NOT NULL DEFAULT '',
    resolved_at BIGINT NOT NULL DEFAULT 0,
    resolved_by TEXT NOT NULL DEFAULT '',
    -- notification rounds written so far (1 = the first notice)
    attempts BIGINT NOT NULL DEFAULT 0,
    -- next notification round due (0: none)
    next_notify_at BIGINT NOT NULL DEFAULT 0,
    -- when this incident put Warden in safe mode (0: it did not)
    safe_mode_at BIGINT NOT NULL DEFAULT 0,
    -- the safe-mode episode it caused or joined ('' when none)
    episode TEXT NOT NULL DEFAULT '',
    -- when the next-shift ticket was written (0: not yet)
    ticket_at BIGINT NOT NULL DEFAULT 0,
    -- duplicate triggers folded into this incident
    duplicates BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS warden_incidents_open
    ON warden_incidents (tenant, dedup_key) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS warden_incidents_due ON warden_incidents (next_notify_at);
CREATE INDEX IF NOT EXISTS warden_incidents_created ON warden_incidents (created_at);

CREATE TABLE IF NOT EXISTS warden_incident_notes (
    id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS warden_incident_notes_of ON warden_incident_notes (incident_id);

CREATE TABLE IF NOT EXISTS warden_recovery_actions (
    id TEXT PRIMARY KEY,
    episode TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS warden_recovery_actions_of ON warden_recovery_actions (episode);

-- Webhook deliveries. `id` is the Standard Webhooks `webhook-id`, stable across retries; the
-- body is fixed when the row is written. A notification round is written once per role:
-- (subject, type, round, role, failover_of) is unique, so two instances never write it
-- twice; a dead delivery's copy for the other role names it in `failover_of`.
CREATE TABLE IF NOT EXISTS warden_outbox (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    type TEXT NOT NULL,
    round BIGINT NOT NULL,
    role TEXT NOT NULL,
    failover_of TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    -- pending | delivered | dead | dropped
    state TEXT NOT NULL,
    tries BIGINT NOT NULL DEFAULT 0,
    next_try_at BIGINT NOT NULL,
    -- a sender's claim: no other instance sends this row before it ends
    claimed_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    done_at BIGINT NOT NULL DEFAULT 0,
    last_status BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS warden_outbox_once ON warden_outbox (subject, type, round, role, failover_of);
CREATE INDEX IF NOT EXISTS warden_outbox_due ON warden_outbox (state, next_try_at);

-- Every try of every delivery, for the evidence pack.
CREATE TABLE IF NOT EXISTS warden_delivery_tries (
    outbox_id TEXT NOT NULL,
    try_no BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (outbox_id, try_no)
);

-- The audit trail becomes a hash chain: each entry's hash covers the previous entry's hash
-- and its own fields. Entries written before this migration have seq 0 and are sealed into
-- the chain (oldest first) at start-up.
ALTER TABLE warden_audit ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE warden_audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE warden_audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
ALTER TABLE warden_audit ADD COLUMN correlation_id TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS warden_audit_seq ON warden_audit (seq);

-- The chain's head; appends lock it, so entries are numbered without gaps.
CREATE TABLE IF NOT EXISTS warden_audit_head (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO warden_audit_head (id, seq, hash) VALUES (1, 0, '') ON CONFLICT (id) DO NOTHING;
