-- The worker fleet (src/fleet): submitted plans waiting for workers, each
-- attempt a worker made, and the workers themselves. Times are milliseconds
-- since the Unix epoch on the database clock.

-- One row per submitted plan. `seq` is the submission order: plans on one
-- project run one at a time in that order (a plan is claimable only while no
-- earlier plan of its project is unfinished). `done` = 1 once the plan is
-- applied, cancelled or errored for good.
CREATE TABLE IF NOT EXISTS plan_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id          TEXT NOT NULL UNIQUE,
    queue            TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    project_id       TEXT NOT NULL,
    identity         TEXT NOT NULL,
    auto_apply       INTEGER NOT NULL DEFAULT 0,
    approved         INTEGER NOT NULL DEFAULT 0,
    idempotency_key  TEXT UNIQUE,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    drift_retries    INTEGER NOT NULL DEFAULT 0,
    run_after        INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    done             INTEGER NOT NULL DEFAULT 0,
    submitted_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS plan_queue_ready ON plan_queue (done, queue, priority, seq);
CREATE INDEX IF NOT EXISTS plan_queue_project ON plan_queue (project_id, done, seq);

-- Every phase a worker ran (or found interrupted), with the lease token it
-- held: two attempts of one plan never overlap under valid leases.
CREATE TABLE IF NOT EXISTS plan_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id    TEXT NOT NULL,
    phase      TEXT NOT NULL,
    worker     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    token      INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    outcome    TEXT,
    error      TEXT
);
CREATE INDEX IF NOT EXISTS plan_attempts_plan ON plan_attempts (plan_id, id);

-- Registered workers and their heartbeats (`lockstep workers list`).
CREATE TABLE IF NOT EXISTS workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT NOT NULL,
    queues       TEXT NOT NULL,
    concurrency  INTEGER NOT NULL,
    ttl_ms       INTEGER NOT NULL,
    running      INTEGER NOT NULL DEFAULT 0,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stopped_at   INTEGER
);
