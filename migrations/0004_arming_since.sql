-- While an instance writes Redis's epoch gates: when it began (database clock, ms); 0 once
-- every gate is written. A missing gate seen during arming is not evidence of data loss.
ALTER TABLE warden_tier ADD COLUMN redis_arming_since BIGINT NOT NULL DEFAULT 0;
