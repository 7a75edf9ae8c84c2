-- The run id (INFO server) of the Redis process the current armed epoch was armed on. Any
-- Redis restart gives a new run id, also one that reloads older data (an RDB snapshot, an AOF
-- that lost its last second) with this epoch's gate but grant counters behind tokens already
-- answered: a run id other than this one is treated as data loss.
ALTER TABLE warden_tier ADD COLUMN redis_run_id TEXT NOT NULL DEFAULT '';
