-- When an incident became critical: its escalation clock (repeats, safe mode after the no-ACK
-- delay, the next-shift ticket) runs from here, not from its creation, so a warning upgraded
-- to critical later gets the whole delay before safe mode. 0: it never escalated.
ALTER TABLE warden_incidents ADD COLUMN escalated_at BIGINT NOT NULL DEFAULT 0;
UPDATE warden_incidents SET escalated_at = created_at WHERE severity = 'critical';
