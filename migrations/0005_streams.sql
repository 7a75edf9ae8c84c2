-- Causal streams (G5): per stream, the last assigned sequence, the last committed one and the
-- version (bumped by every commit). Sequences are assigned and commits applied inside the
-- transaction that makes them durable, under this row's lock, so none is reused or skipped.
CREATE TABLE IF NOT EXISTS warden_streams (
    stream TEXT PRIMARY KEY,
    assigned BIGINT NOT NULL DEFAULT 0,
    last_committed BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 0,
    CHECK (last_committed >= 0 AND last_committed <= assigned AND version >= last_committed)
);

-- Intents, one per (stream, commit_sequence) and per (stream, intent_id).
CREATE TABLE IF NOT EXISTS warden_intents (
    stream TEXT NOT NULL,
    commit_sequence BIGINT NOT NULL,
    intent_id TEXT NOT NULL,
    dispatch_priority BIGINT NOT NULL,
    intent_type TEXT NOT NULL,
    -- the payload, exactly as the client sent it (JSON text)
    payload TEXT NOT NULL,
    arrived_at BIGINT NOT NULL,
    -- ready | leased | waiting (its commit is parked for its turn) | committed | review
    state TEXT NOT NULL,
    worker TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    -- expected_version of a parked commit, -1 for none
    expected_version BIGINT NOT NULL DEFAULT -1,
    waiting_since BIGINT NOT NULL DEFAULT 0,
    committed_version BIGINT NOT NULL DEFAULT 0,
    committed_at BIGINT NOT NULL DEFAULT 0,
    replays BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, commit_sequence),
    UNIQUE (stream, intent_id)
);
-- Dispatch order: priority (highest first), then arrival.
CREATE INDEX IF NOT EXISTS warden_intents_dispatch
    ON warden_intents (dispatch_priority DESC, arrived_at, stream, commit_sequence)
    WHERE state IN ('ready', 'leased');
-- Parked commits, per stream (cascades) and by age (the causal wait timeout).
CREATE INDEX IF NOT EXISTS warden_intents_waiting
    ON warden_intents (stream, commit_sequence) WHERE state = 'waiting';
CREATE INDEX IF NOT EXISTS warden_intents_waiting_since
    ON warden_intents (waiting_since) WHERE state = 'waiting';

-- The manual review queue: causal timeouts, expired replays, conflicts found while a parked
-- commit was applied. Resolved items stay, with the action and the actor.
CREATE TABLE IF NOT EXISTS warden_review (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    stream TEXT NOT NULL,
    intent_id TEXT NOT NULL,
    commit_sequence BIGINT NOT NULL,
    detail TEXT NOT NULL,
    -- open | resolved
    state TEXT NOT NULL,
    action TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    resolved_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS warden_review_state ON warden_review (state, created_at, id);
CREATE INDEX IF NOT EXISTS warden_review_intent ON warden_review (stream, intent_id);

-- Audit trail of operator actions (append only).
CREATE TABLE IF NOT EXISTS warden_audit (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS warden_audit_at ON warden_audit (at);
