-- lockstep schema, SQLite dialect. Times are milliseconds since the Unix epoch
-- taken from the database clock.

CREATE TABLE IF NOT EXISTS lock_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO lock_counter (id, value) VALUES (1, 0);

CREATE TABLE IF NOT EXISTS locks (
    resource    TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    token       INTEGER NOT NULL,
    operation   TEXT NOT NULL,
    holder_host TEXT NOT NULL,
    holder_pid  INTEGER NOT NULL,
    holder_user TEXT NOT NULL,
    holds       INTEGER NOT NULL DEFAULT 1,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS locks_owner ON locks (owner);

CREATE TABLE IF NOT EXISTS plans (
    id            TEXT PRIMARY KEY,
    project_root  TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    action_json   TEXT NOT NULL,
    phase         TEXT NOT NULL,
    state         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    lock_token    INTEGER,
    proposal_json TEXT,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS plans_created ON plans (created_at);

CREATE TABLE IF NOT EXISTS plan_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id    TEXT NOT NULL,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    from_phase TEXT,
    from_state TEXT,
    to_phase   TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS plan_events_plan ON plan_events (plan_id, id);

CREATE TABLE IF NOT EXISTS step_results (
    plan_id TEXT NOT NULL,
    idx     INTEGER NOT NULL,
    step_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (plan_id, idx)
);

CREATE TABLE IF NOT EXISTS changes (
    plan_id   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    path      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    contents  BLOB,
    base_contents BLOB,
    base_hash TEXT,
    new_hash  TEXT,
    PRIMARY KEY (plan_id, seq)
);

CREATE TABLE IF NOT EXISTS apply_journal (
    plan_id    TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    token      INTEGER NOT NULL,
    started_at INTEGER NOT NULL
);
