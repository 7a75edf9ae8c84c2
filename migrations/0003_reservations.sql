-- Flash-sale inventory (G6): the durable counts. available = total - reserved - confirmed is
-- derived, so it can never disagree with the other three.
CREATE TABLE IF NOT EXISTS warden_inventory (
    sku TEXT PRIMARY KEY,
    total BIGINT NOT NULL,
    reserved BIGINT NOT NULL DEFAULT 0,
    confirmed BIGINT NOT NULL DEFAULT 0,
    CHECK (reserved >= 0 AND confirmed >= 0 AND reserved + confirmed <= total)
);

-- Holds. Every acknowledged hold is here before its answer; its state changes once, from
-- 'held' to 'confirmed', 'released' or 'expired', by a conditional update.
CREATE TABLE IF NOT EXISTS warden_holds (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    user_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS warden_holds_deadline ON warden_holds (state, expires_at);
CREATE INDEX IF NOT EXISTS warden_holds_user ON warden_holds (sku, user_id);
