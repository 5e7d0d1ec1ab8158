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
    /// Let go of a plan the worker did not finish: clear the claim's hint
    /// if the lease is still ours ($1 plan, $2–$4 the fence, not judged by
    /// its expiry) and release every lease of the claim's owner ($3), in
    /// one request.
    pub release: String,
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
            release: release(backend),
            notify: match backend {
                Backend::Sqlite => None,
                Backend::Postgres => Some("SELECT pg_notify('lockstep_queue', $1)"),
            },
        }
    }
}

/// The query for the next claimable plan's id (see [`FleetSql::claim`]).
fn claimable(backend: Backend) -> String {
    let now = backend.now_ms();
    // The walk is the claim-order index's, stopping at the first plan
    // that qualifies. SQLite would rather take `plan_queue_ready` for its
    // `done = 0` and sort every unfinished plan, once per claim (17 ms a
    // claim at 10 000 queued): it is told which index to walk.
    let (queue, in_queues, lock_rows) = match backend {
        Backend::Sqlite => (
            "plan_queue q INDEXED BY plan_queue_claim",
            "instr(',' || $1 || ',', ',' || q.queue || ',') > 0",
            "",
        ),
        Backend::Postgres => (
            "plan_queue q",
            "strpos(',' || $1 || ',', ',' || q.queue || ',') > 0",
            " FOR UPDATE OF q SKIP LOCKED",
        ),
    };
    // Runnable: everything unfinished except a plan that waits for its
    // approval; claimable: runnable, its turn in its project (no earlier
    // unfinished plan there), not backing off, and nobody's live lease
    // on it. The cheap tests come first: the queue row's own columns (a
    // plan claimed a moment ago is passed over on its hint), then the
    // lease, the project's order, and the plan's status only for a plan
    // that is neither auto-applied nor approved.
    format!(
        "SELECT q.plan_id FROM {queue}
         WHERE q.done = 0 AND q.claimed_until <= {now} AND q.run_after <= {now} AND {in_queues}
           AND NOT EXISTS (SELECT 1 FROM locks l
                           WHERE l.resource = 'plan:' || q.plan_id AND l.expires_at > {now})
           AND NOT EXISTS (SELECT 1 FROM plan_queue e
                           WHERE e.project_id = q.project_id AND e.done = 0 AND e.seq < q.seq)
           AND (q.auto_apply = 1 OR q.approved = 1 OR q.cancel_requested = 1
                OR NOT EXISTS (SELECT 1 FROM plans p WHERE p.id = q.plan_id
                               AND p.phase = 'execute' AND p.state = 'complete'))
         ORDER BY q.priority DESC, q.seq
         LIMIT 1{lock_rows}"
    )
}

/// The claim (see [`FleetSql::claim`]); `joined`: the plan's and its queue
/// row's columns `FROM` the two tables.
fn claim(backend: Backend, joined: &str) -> String {
    let now = backend.now_ms();
    let token = crate::locks::new_token(backend);
    let takeover = crate::locks::takeover("NULL");
    let next = claimable(backend);
    // The lease is taken as the lock service takes one: a fresh token,
    // over an expired row only.
    let insert = |from: &str| {
        format!(
            "INSERT INTO locks (resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at)
             SELECT 'plan:' || next.plan_id, $2, {token}, 'worker', $3, $4, $5, 1, {now}, {now} + $6 FROM {from}
             {takeover}
             RETURNING resource, token, expires_at"
        )
    };
    // With the lease, the hint on the queue row; the claim returns the
    // claimed plan and its queue row too.
    match backend {
        Backend::Sqlite => format!(
            "BEGIN IMMEDIATE;
             {insert};
             UPDATE plan_queue SET claimed_until = {now} + $6
             WHERE plan_id IN (SELECT substr(resource, 6) FROM locks WHERE owner = $2);
             SELECT l.resource, l.token, l.expires_at, {joined} JOIN locks l ON p.id = substr(l.resource, 6)
             WHERE l.owner = $2;
             COMMIT",
            insert = insert(&format!("({next}) AS next WHERE true")),
        ),
        // The inserted lease is not visible to the rest of the
        // statement: take it from the `RETURNING`. The plan is found by
        // its key (`p.id = …`, not `… = 'plan:' || p.id`, which the
        // planner can only answer by scanning every plan).
        Backend::Postgres => format!(
            "WITH next AS ({next}),
                  claimed AS ({insert}),
                  hinted AS (UPDATE plan_queue SET claimed_until = {now} + $6
                             FROM claimed c WHERE plan_queue.plan_id = substr(c.resource, 6))
             SELECT c.resource, c.token, c.expires_at, {joined} JOIN claimed c ON p.id = substr(c.resource, 6)",
            insert = insert("next"),
        ),
    }
}

/// See [`FleetSql::release`].
fn release(backend: Backend) -> String {
    let lease = "EXISTS (SELECT 1 FROM locks WHERE resource = $2 AND owner = $3 AND token = $4)";
    releasing(
        backend,
        &format!("UPDATE plan_queue SET claimed_until = 0 WHERE plan_id = $1 AND {lease}"),
    )
}

/// See [`FleetSql::finish`].
fn finish(backend: Backend) -> String {
    let now = backend.now_ms();
    let lease = format!("EXISTS (SELECT 1 FROM locks WHERE resource = $2 AND owner = $3 AND token = $4 AND expires_at > {now})");
    releasing(
        backend,
        &format!("UPDATE plan_queue SET done = 1 WHERE plan_id = $1 AND {lease}"),
    )
}

/// `update` (of the queue row, judged before the release) and the release
/// of every lease of the claim's owner ($3), as one request.
fn releasing(backend: Backend, update: &str) -> String {
    match backend {
        Backend::Sqlite => {
            format!("BEGIN IMMEDIATE;\n{update};\nDELETE FROM locks WHERE owner = $3;\nCOMMIT")
        }
        Backend::Postgres => {
            format!("WITH updated AS ({update}) DELETE FROM locks WHERE owner = $3")
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::claimable;
    use crate::db::{Backend, Db};

    /// The claim walks the queue in claim order and stops at the first
    /// plan that qualifies: no sort of every unfinished plan per claim.
    #[tokio::test]
    async fn a_sqlite_claim_walks_the_claim_order_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let plan = sqlx::query(&format!(
            "EXPLAIN QUERY PLAN {}",
            claimable(Backend::Sqlite)
        ))
        .bind("default")
        .fetch_all(db.reader())
        .await
        .unwrap();
        let steps: Vec<String> = plan.iter().map(|r| r.get::<String, _>("detail")).collect();
        assert!(
            steps
                .iter()
                .any(|s| s.contains("SCAN q USING INDEX plan_queue_claim")),
            "{steps:?}"
        );
        assert!(
            !steps.iter().any(|s| s.contains("TEMP B-TREE")),
            "{steps:?}"
        );
    }
}
