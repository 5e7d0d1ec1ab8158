-- The worker fleet (src/fleet): submitted plans waiting for workers, each
-- attempt a worker made, and the workers themselves. Times are milliseconds
-- since the Unix epoch on the database clock.

-- One row per submitted plan. `seq` is the submission order: plans on one
-- project run one at a time in that order (a plan is claimable only while no
-- earlier plan of its project is unfinished). `done` = 1 once the plan is
-- applied, cancelled or errored for good.
CREATE TABLE IF NOT EXISTS plan_queue (
    seq BIGSERIAL PRIMARY KEY,
    plan_id          TEXT NOT NULL UNIQUE,
    queue            TEXT NOT NULL,
    priority         BIGINT NOT NULL DEFAULT 0,
    project_id       TEXT NOT NULL,
    identity         TEXT NOT NULL,
    auto_apply       BIGINT NOT NULL DEFAULT 0,
    approved         BIGINT NOT NULL DEFAULT 0,
    idempotency_key  TEXT UNIQUE,
    attempts         BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    drift_retries    BIGINT NOT NULL DEFAULT 0,
    run_after        BIGINT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    done             BIGINT NOT NULL DEFAULT 0,
    submitted_at     BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS plan_queue_ready ON plan_queue (done, queue, priority, seq);
CREATE INDEX IF NOT EXISTS plan_queue_project ON plan_queue (project_id, done, seq);

-- Every phase a worker ran (or found interrupted), with the lease token it
-- held: two attempts of one plan never overlap under valid leases.
CREATE TABLE IF NOT EXISTS plan_attempts (
    id BIGSERIAL PRIMARY KEY,
    plan_id    TEXT NOT NULL,
    phase      TEXT NOT NULL,
    worker     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    token      BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    outcome    TEXT,
    error      TEXT
);
CREATE INDEX IF NOT EXISTS plan_attempts_plan ON plan_attempts (plan_id, id);

-- Registered workers and their heartbeats (`lockstep workers list`).
CREATE TABLE IF NOT EXISTS workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    version      TEXT NOT NULL,
    queues       TEXT NOT NULL,
    concurrency  BIGINT NOT NULL,
    ttl_ms       BIGINT NOT NULL,
    running      BIGINT NOT NULL DEFAULT 0,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at   BIGINT
);
