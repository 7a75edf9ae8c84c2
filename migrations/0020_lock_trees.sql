-- Tree keys (DESIGN §4.1, `tree: true`). `tree_root` is the stored name of a tree key's root
-- ('' for a plain key): a tree grant, holding the root's row (whose counter every grant of the
-- tree draws from), finds every live lease of its tree through one index and checks the
-- ancestors and descendants of the key it grants.
ALTER TABLE warden_locks ADD COLUMN tree_root TEXT NOT NULL DEFAULT '';
ALTER TABLE warden_lock_shares ADD COLUMN tree_root TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS warden_locks_tree ON warden_locks (tree_root, expires_at)
    WHERE tree_root <> '';
CREATE INDEX IF NOT EXISTS warden_lock_shares_tree ON warden_lock_shares (tree_root, expires_at)
    WHERE tree_root <> '';
