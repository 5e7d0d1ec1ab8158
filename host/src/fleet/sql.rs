//! The fleet's statements, specialised per backend like the lock service's.

use crate::db::Backend;

/// Prepared SQL text for one backend.
#[derive(Debug, Clone)]
pub(crate) struct FleetSql {
    /// Claim the next runnable plan and take its lease in one statement.
    /// $1 queues (comma-joined), $2 owner, $3 host, $4 pid, $5 user,
    /// $6 ttl ms. Returns `plan_id, token, expires_at`.
    /// A batch (see `Db::batch`): on SQLite in a `BEGIN IMMEDIATE`
    /// transaction. Returns `resource, token, expires_at`, the plan
    /// (`Store::plan_read` columns) and its queue row (`TICKET`).
    pub claim: String,
    /// The plan and its queue row (`TICKET` columns after the plan's),
    /// $1 the plan.
    pub read: String,
    /// Finish the plan in the queue (fenced, $1 plan, $2–$4 the fence) and
    /// release every lease of the claim's owner ($3), in one request.
    pub finish: String,
    /// Tell listening workers that work arrived (PostgreSQL only).
    pub notify: Option<&'static str>,
}

/// The queue row's columns a worker reads (table alias `q`), in the order
/// `Ticket::at` decodes them.
pub(crate) const TICKET: &str = "q.identity, q.auto_apply, q.approved, q.attempts, q.max_attempts, q.drift_retries, q.cancel_requested, q.done";

/// The channel workers `LISTEN` on.
pub(crate) const CHANNEL: &str = "lockstep_queue";

impl FleetSql {
    pub(crate) fn new(backend: Backend) -> Self {
        let plan = crate::store::Store::plan_read_columns("p");
        let joined = format!("{plan}, {TICKET} FROM plans p JOIN plan_queue q ON q.plan_id = p.id");
        FleetSql {
            claim: claim(backend, &joined),
            read: format!("SELECT {joined} WHERE p.id = $1"),
            finish: finish(backend),
            notify: match backend {
                Backend::Sqlite => None,
                Backend::Postgres => Some("SELECT pg_notify('lockstep_queue', $1)"),
            },
        }
    }
}

/// The claim (see [`FleetSql::claim`]); `joined`: the plan's and its queue
/// row's columns `FROM` the two tables.
fn claim(backend: Backend, joined: &str) -> String {
    let now = backend.now_ms();
    let token = crate::locks::new_token(backend);
    let takeover = crate::locks::takeover("NULL");
    let (in_queues, lock_rows, where_true) = match backend {
        Backend::Sqlite => (
            "instr(',' || $1 || ',', ',' || q.queue || ',') > 0",
            "",
            " WHERE true",
        ),
        Backend::Postgres => (
            "strpos(',' || $1 || ',', ',' || q.queue || ',') > 0",
            " FOR UPDATE OF q SKIP LOCKED",
            "",
        ),
    };
    // Runnable: everything unfinished except a plan that waits for its
    // approval; claimable: runnable, its turn in its project (no earlier
    // unfinished plan there), not backing off, and nobody's live lease
    // on it. The lease is then taken as the lock service takes one: a
    // fresh token, over an expired row only.
    let claim = format!(
        "WITH next AS (
           SELECT q.plan_id FROM plan_queue q JOIN plans p ON p.id = q.plan_id
           WHERE q.done = 0 AND {in_queues} AND q.run_after <= {now}
             AND NOT (p.phase = 'execute' AND p.state = 'complete'
                      AND q.auto_apply = 0 AND q.approved = 0 AND q.cancel_requested = 0)
             AND NOT EXISTS (SELECT 1 FROM plan_queue e
                             WHERE e.project_id = q.project_id AND e.done = 0 AND e.seq < q.seq)
             AND NOT EXISTS (SELECT 1 FROM locks l
                             WHERE l.resource = 'plan:' || q.plan_id AND l.expires_at > {now})
           ORDER BY q.priority DESC, q.seq
           LIMIT 1{lock_rows}
         )
         INSERT INTO locks (resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at)
         SELECT 'plan:' || next.plan_id, $2, {token}, 'worker', $3, $4, $5, 1, {now}, {now} + $6 FROM next{where_true}
         {takeover}
         RETURNING resource, token, expires_at"
    );
    // The claim returns the claimed plan and its queue row too.
    match backend {
        Backend::Sqlite => format!(
            "BEGIN IMMEDIATE;
             {claim};
             SELECT l.resource, l.token, l.expires_at, {joined} JOIN locks l ON l.resource = 'plan:' || p.id
             WHERE l.owner = $2;
             COMMIT"
        ),
        // The inserted lease is not visible to the rest of the
        // statement: take it from the `RETURNING`.
        Backend::Postgres => format!(
            "WITH claimed AS ({claim})
             SELECT c.resource, c.token, c.expires_at, {joined} JOIN claimed c ON c.resource = 'plan:' || p.id"
        ),
    }
}

/// See [`FleetSql::finish`].
fn finish(backend: Backend) -> String {
    let now = backend.now_ms();
    let done = format!("UPDATE plan_queue SET done = 1 WHERE plan_id = $1 AND EXISTS (SELECT 1 FROM locks WHERE resource = $2 AND owner = $3 AND token = $4 AND expires_at > {now})");
    match backend {
        Backend::Sqlite => {
            format!("BEGIN IMMEDIATE;\n{done};\nDELETE FROM locks WHERE owner = $3;\nCOMMIT")
        }
        Backend::Postgres => format!("WITH done AS ({done}) DELETE FROM locks WHERE owner = $3"),
    }
}
