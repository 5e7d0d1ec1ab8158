-- lockstep schema, PostgreSQL dialect. Times are milliseconds since the Unix epoch
-- taken from the database clock.

-- Fencing tokens: a sequence is monotonic across every session and host.
CREATE SEQUENCE IF NOT EXISTS lock_token_seq;

CREATE TABLE IF NOT EXISTS locks (
    resource    TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    token       BIGINT NOT NULL,
    operation   TEXT NOT NULL,
    holder_host TEXT NOT NULL,
    holder_pid  BIGINT NOT NULL,
    holder_user TEXT NOT NULL,
    holds       BIGINT NOT NULL DEFAULT 1,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS locks_owner ON locks (owner);

CREATE TABLE IF NOT EXISTS plans (
    id            TEXT PRIMARY KEY,
    project_root  TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    action_json   TEXT NOT NULL,
    phase         TEXT NOT NULL,
    state         TEXT NOT NULL,
    version       BIGINT NOT NULL,
    lock_token    BIGINT,
    proposal_json TEXT,
    error         TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS plans_created ON plans (created_at);

CREATE TABLE IF NOT EXISTS plan_events (
    id         BIGSERIAL PRIMARY KEY,
    plan_id    TEXT NOT NULL,
    at         BIGINT NOT NULL,
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
    idx     BIGINT NOT NULL,
    step_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (plan_id, idx)
);

CREATE TABLE IF NOT EXISTS changes (
    plan_id   TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    path      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    contents  BYTEA,
    base_contents BYTEA,
    base_hash TEXT,
    new_hash  TEXT,
    PRIMARY KEY (plan_id, seq)
);

CREATE TABLE IF NOT EXISTS apply_journal (
    plan_id    TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    token      BIGINT NOT NULL,
    started_at BIGINT NOT NULL
);
