-- A lease's max_hold_ms deadline (epoch ms): no extend takes expires_at past it. 0: no cap.
ALTER TABLE warden_locks ADD COLUMN hold_until BIGINT NOT NULL DEFAULT 0;
