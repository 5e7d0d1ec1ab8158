//! The fleet's statements, specialised per backend like the lock service's.

use crate::db::Backend;

/// Prepared SQL text for one backend.
#[derive(Debug, Clone)]
pub(crate) struct FleetSql {
    /// Claim the next runnable plan and take its lease in one statement.
    /// $1 queues (comma-joined), $2 owner, $3 host, $4 pid, $5 user,
    /// $6 ttl ms. Returns `plan_id, token, expires_at`.
    /// A batch (see `Db::batch`): on SQLite in a `BEGIN IMMEDIATE`
    /// transaction.
    pub claim: String,
    /// Tell listening workers that work arrived (PostgreSQL only).
    pub notify: Option<&'static str>,
}

/// The channel workers `LISTEN` on.
pub(crate) const CHANNEL: &str = "lockstep_queue";

impl FleetSql {
    pub(crate) fn new(backend: Backend) -> Self {
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
        let claim_batch = match backend {
            Backend::Sqlite => format!("BEGIN IMMEDIATE;\n{claim};\nCOMMIT"),
            Backend::Postgres => claim.clone(),
        };
        FleetSql {
            claim: claim_batch,
            notify: match backend {
                Backend::Sqlite => None,
                Backend::Postgres => Some("SELECT pg_notify('lockstep_queue', $1)"),
            },
        }
    }
}
