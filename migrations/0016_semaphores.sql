-- Semaphores (DESIGN §4.1): one row per semaphore carries its token counter (restarting at
-- each epoch, like a lock's) and the limit its live permits were granted under; one row per
-- permit grant. A semaphore's count is the sum of its live permit rows, never a stored total.
CREATE TABLE IF NOT EXISTS warden_semaphores (
    name TEXT PRIMARY KEY,
    limit_n BIGINT NOT NULL,
    counter BIGINT NOT NULL,
    token BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS warden_permits (
    name TEXT NOT NULL,
    token BIGINT NOT NULL,
    owner TEXT NOT NULL,
    count_n BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (name, token)
);
CREATE INDEX IF NOT EXISTS warden_permits_owner ON warden_permits (name, owner);
CREATE INDEX IF NOT EXISTS warden_permits_expires ON warden_permits (expires_at);
