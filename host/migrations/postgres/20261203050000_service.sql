-- The service (src/service): API tokens and dashboard sessions (both stored
-- as SHA-256 hashes of high-entropy secrets, never the secrets), the
-- projects an admin registered (the only ones a plan submitted over HTTP
-- may name), and the audit log of operator actions. Times are milliseconds
-- since the Unix epoch on the database clock.

CREATE TABLE IF NOT EXISTS api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE IF NOT EXISTS api_sessions (
    hash       TEXT PRIMARY KEY,
    who        TEXT NOT NULL,
    token_id   TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_sessions_expiry ON api_sessions (expires_at);

CREATE TABLE IF NOT EXISTS projects (
    id       TEXT PRIMARY KEY,
    path     TEXT NOT NULL UNIQUE,
    added_by TEXT NOT NULL,
    added_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);
