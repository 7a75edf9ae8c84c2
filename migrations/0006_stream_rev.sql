-- A stream row's revision: bumped by every batch that changes the stream or any of its intents
-- or review items. PostgreSQL batches read without locks and write only if every stream they
-- change is still at the revision they read (optimistic concurrency), so the revision stands
-- for the whole stream, parked commits included.
ALTER TABLE warden_streams ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
