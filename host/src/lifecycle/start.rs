//! The start of a phase in as few requests as the backend allows: the plan
//! lock taken and the plan read in **one request**, and on SQLite the
//! transaction that took the lock kept open so that the `*/processing`
//! write (and apply's tree lock) commit with it — the start of a phase is
//! one commit. The transaction stays open only across the decision in
//! memory (the transition, which phase): anything else — a recovery, a
//! held lock, a refusal — commits it first and goes the ordinary way.
//!
//! If such a transaction is rolled back instead (the database failed
//! half-way), the acquisition in it never happened: the guards it made are
//! then marked released, so that their release cannot count a re-entrant
//! hold (a fleet worker's claim) down twice.

use std::time::Instant;

use sqlx::any::AnyRow;

use super::service::{plan_resource, project_resource};
use super::{transition, Command, LifecycleError, PlanLifecycleService};
use crate::db::{Backend, Open, WriteTx};
use crate::locks::LockGuard;
use crate::model::{ChangeRecord, Phase, PlanRecord, Status, PHASES, STATES};
use crate::store::{PlanRead, Store, StoreError};

/// The plan lock, the plan as read under it, and (SQLite) the open
/// transaction that took the lock.
pub(super) struct Locked {
    pub guard: LockGuard,
    pub read: PlanRead,
    pub tx: Option<WriteTx>,
    /// The stored changeset, if read with the plan (apply, SQLite).
    pub changes: Option<Vec<ChangeRecord>>,
    /// The plan's version after its `*/processing` write, if that write
    /// went in the same request (strategize, execute).
    pub started: Option<i64>,
}

/// The `*/processing` write sent with the lock and the read: the command's
/// phase, the statuses it may start from (by the transition table), the
/// event's reason.
pub(super) struct Start {
    phase: Phase,
    from: String,
    reason: String,
}

impl Start {
    /// For a command that runs `phase` from the statuses the transition
    /// table allows; `None` if it has none.
    pub(super) fn of(command: Command) -> Option<Start> {
        let mut phase = None;
        let mut from = Vec::new();
        for p in PHASES {
            for st in STATES {
                if let Ok(t) = transition(Some(Status::new(p, st)), command) {
                    phase = Some(t.start.phase);
                    from.push(format!("'{p}/{st}'"));
                }
            }
        }
        Some(Start {
            phase: phase?,
            from: from.join(", "),
            reason: format!("{command} started"),
        })
    }

    /// The event (first) and the update of the start, guarded by the
    /// statuses it may start from and by the lease `$1`/`$2` taken in the
    /// same request. $8 the plan, $9 the phase, $10 the reason.
    fn sqlite(&self, now: &str) -> [String; 2] {
        let lease = format!("EXISTS (SELECT 1 FROM locks WHERE resource = $1 AND owner = $2 AND expires_at > {now})");
        let may = format!(
            "id = $8 AND (phase || '/' || state) IN ({}) AND {lease}",
            self.from
        );
        [
            format!(
                "INSERT INTO plan_events (plan_id, at, actor, from_phase, from_state, to_phase, to_state, reason)
                 SELECT id, {now}, $2, phase, state, $9, 'processing', $10 FROM plans WHERE {may}"
            ),
            format!(
                "UPDATE plans SET phase = $9, state = 'processing', version = version + 1, error = NULL, updated_at = {now},
                        lock_token = (SELECT token FROM locks WHERE resource = $1)
                 WHERE {may} RETURNING version"
            ),
        ]
    }
}

/// The start of a fleet worker's attempt, with the phase's start (see
/// [`crate::store::Attempts`]): the plan $8, the phase $9, the worker $11,
/// the lease's owner $2 and its token.
const BEGIN_ATTEMPT: &str =
    "INSERT INTO plan_attempts (plan_id, phase, worker, owner, token, started_at)";

/// A plan read with the lock, and its changeset if asked for.
type ReadWithChanges = (PlanRead, Option<Vec<ChangeRecord>>);

/// The plan (second statement's row) and, `with_changes`, the changeset
/// (the third's rows) of a SQLite start request.
fn read_with_changes(
    groups: &[Vec<AnyRow>],
    id: &str,
    with_changes: bool,
) -> Result<Option<ReadWithChanges>, StoreError> {
    let read = match groups.get(1).and_then(|rows| rows.first()) {
        Some(row) => Store::plan_read(row, 0)?,
        None => None,
    };
    let changes = match groups.get(2) {
        Some(rows) if with_changes => Some(Store::changes_from(rows, id)?),
        _ => None,
    };
    Ok(read.map(|read| (read, changes)))
}

/// Commit `tx` (if open): what it did is kept. If the commit fails, the
/// transaction was rolled back and the leases taken in it were never
/// granted: `guards` must not release them.
pub(super) async fn settle(tx: Option<WriteTx>, guards: &[&LockGuard]) {
    let Some(mut tx) = tx else { return };
    if let Err(e) = tx.commit().await {
        tracing::warn!("committing the plan lock failed: {e}; it was not taken");
        void(guards);
    }
}

/// The leases of a rolled-back transaction: never granted.
pub(super) fn void(guards: &[&LockGuard]) {
    for guard in guards {
        guard.released_by_write();
    }
}

fn db_error(e: sqlx::Error) -> LifecycleError {
    LifecycleError::Store(StoreError::Database(e))
}

impl PlanLifecycleService {
    /// Take the plan lock and read the plan: in one request when the lock
    /// is free, else the ordinary way (waiting as the session is told to,
    /// or failing with the holder).
    pub(super) async fn lock_and_read(
        &self,
        id: &str,
        operation: &str,
        with_changes: bool,
        start: Option<Start>,
    ) -> Result<Locked, LifecycleError> {
        let resource = plan_resource(id);
        let fast = match (self.store.db().backend, start) {
            (Backend::Sqlite, Some(start)) => {
                self.lock_read_start_sqlite(&resource, id, operation, &start)
                    .await?
            }
            (Backend::Postgres, Some(start)) => {
                self.lock_read_start_postgres(&resource, id, operation, &start)
                    .await?
            }
            (backend, None) => {
                self.lock_and_read_any(backend, &resource, id, operation, with_changes)
                    .await?
            }
        };
        if let Some(locked) = fast {
            return Ok(locked);
        }
        let guard = self.lock(&resource, operation).await?;
        match self.store.read_plan(id).await {
            Ok(read) => Ok(Locked {
                guard,
                read,
                tx: None,
                changes: None,
                started: None,
            }),
            Err(e) => {
                let _ = guard.release().await;
                Err(e.into())
            }
        }
    }

    async fn lock_and_read_any(
        &self,
        backend: Backend,
        resource: &str,
        id: &str,
        operation: &str,
        with_changes: bool,
    ) -> Result<Option<Locked>, LifecycleError> {
        Ok(match backend {
            Backend::Sqlite => {
                self.lock_and_read_sqlite(resource, id, operation, with_changes)
                    .await?
            }
            Backend::Postgres => self.lock_and_read_postgres(resource, id, operation).await?,
        })
    }

    /// SQLite: `BEGIN IMMEDIATE`, the acquisition and the read (and the
    /// changeset, `with_changes`) in one request; the transaction stays
    /// open. `None`: the lock is held.
    async fn lock_and_read_sqlite(
        &self,
        resource: &str,
        id: &str,
        operation: &str,
        with_changes: bool,
    ) -> Result<Option<Locked>, LifecycleError> {
        let db = self.store.db();
        let read_sql = Store::plan_sql(8);
        let changes_sql = Store::changes_sql(8);
        let mut statements = vec![self.locks().acquire_sql(), read_sql.as_str()];
        if with_changes {
            statements.push(&changes_sql);
        }
        let sql = db.batch_sql(&statements, Open::Begin);
        let ttl = self.options().lock_ttl;
        let query = self
            .locks()
            .bind_acquire(sqlx::query(&sql), resource, self.owner(), operation, ttl)?
            .bind(id);
        let sent_at = Instant::now();
        let (tx, groups) = db.begin_batch(query).await.map_err(db_error)?;
        let Some(grant) = groups.first().and_then(|rows| rows.first()) else {
            // Held by someone else: nothing was written.
            settle(Some(tx), &[]).await;
            return Ok(None);
        };
        let guard = self
            .locks()
            .guard_from(grant, resource, self.owner(), ttl, sent_at)?;
        match read_with_changes(&groups, id, with_changes) {
            Ok(Some((read, changes))) => Ok(Some(Locked {
                guard,
                read,
                tx: Some(tx),
                changes,
                started: None,
            })),
            other => {
                settle(Some(tx), &[&guard]).await;
                let _ = guard.release().await;
                Err(match other {
                    Err(e) => e.into(),
                    _ => StoreError::NotFound(id.to_string()).into(),
                })
            }
        }
    }

    /// PostgreSQL: the acquisition and the read in one statement (the
    /// acquisition commits on its own). `None`: the lock is held.
    async fn lock_and_read_postgres(
        &self,
        resource: &str,
        id: &str,
        operation: &str,
    ) -> Result<Option<Locked>, LifecycleError> {
        let sql = format!(
            "WITH granted AS ({}) SELECT g.token, g.holds, g.acquired_at, g.expires_at, g.granted_at, x.*
             FROM granted g LEFT JOIN ({}) x ON true",
            self.locks().acquire_sql(),
            Store::plan_sql(8)
        );
        let Some((guard, groups)) = self
            .send_locked(&sql, resource, id, operation, None)
            .await?
        else {
            return Ok(None);
        };
        let row = groups.first().and_then(|rows| rows.first());
        self.locked(guard, row.map(|row| (row, 5)), id, None).await
    }

    /// SQLite: the acquisition, the read and the start (event, update) in
    /// one request and one transaction. `None`: the lock is held.
    async fn lock_read_start_sqlite(
        &self,
        resource: &str,
        id: &str,
        operation: &str,
        start: &Start,
    ) -> Result<Option<Locked>, LifecycleError> {
        let db = self.store.db();
        let read_sql = Store::plan_sql(8);
        let [event, update] = start.sqlite(db.now_ms());
        let mut statements = vec![
            self.locks().acquire_sql(),
            read_sql.as_str(),
            &event,
            &update,
        ];
        let began = self.attempts.as_ref().map(|_| {
            format!(
                "{BEGIN_ATTEMPT} SELECT $8, $9, $11, $2, (SELECT token FROM locks WHERE resource = $1), {now} WHERE changes() = 1",
                now = db.now_ms()
            )
        });
        statements.extend(began.as_deref());
        let sql = db.batch_sql(&statements, Open::Both);
        let Some((guard, groups)) = self
            .send_locked(&sql, resource, id, operation, Some(start))
            .await?
        else {
            return Ok(None);
        };
        let started = match groups.get(3).and_then(|rows| rows.first()) {
            Some(row) => Some(sqlx::Row::try_get::<i64, _>(row, 0).map_err(db_error)?),
            None => None,
        };
        let read = groups.get(1).and_then(|rows| rows.first());
        self.locked(guard, read.map(|row| (row, 0)), id, started)
            .await
    }

    /// PostgreSQL: the acquisition, the read and the start (update, event)
    /// in one statement. `None`: the lock is held.
    async fn lock_read_start_postgres(
        &self,
        resource: &str,
        id: &str,
        operation: &str,
        start: &Start,
    ) -> Result<Option<Locked>, LifecycleError> {
        let now = self.store.db().now_ms();
        let sql = format!(
            "WITH granted AS ({acquire}),
                  old AS ({read}),
                  updated AS (UPDATE plans SET phase = $9, state = 'processing', version = plans.version + 1,
                                     error = NULL, updated_at = {now}, lock_token = g.token
                              FROM granted g
                              WHERE plans.id = $8 AND (plans.phase || '/' || plans.state) IN ({from})
                              RETURNING plans.version),
                  logged AS (INSERT INTO plan_events (plan_id, at, actor, from_phase, from_state, to_phase, to_state, reason)
                             SELECT $8, {now}, $2, o.phase, o.state, $9, 'processing', $10 FROM updated, old o){began}
             SELECT g.token, g.holds, g.acquired_at, g.expires_at, g.granted_at, x.*,
                    (SELECT version FROM updated) AS started
             FROM granted g LEFT JOIN old x ON true",
            acquire = self.locks().acquire_sql(),
            read = Store::plan_sql(8),
            from = start.from,
            began = match self.attempts {
                Some(_) => format!(
                    ",\n began AS ({BEGIN_ATTEMPT} SELECT $8, $9, $11, $2, g.token, {now} FROM updated, granted g)"
                ),
                None => String::new(),
            },
        );
        let Some((guard, groups)) = self
            .send_locked(&sql, resource, id, operation, Some(start))
            .await?
        else {
            return Ok(None);
        };
        let row = groups.first().and_then(|rows| rows.first());
        let started: Option<i64> = match row {
            Some(row) => sqlx::Row::try_get(row, 5 + 13).map_err(db_error)?,
            None => None,
        };
        self.locked(guard, row.map(|row| (row, 5)), id, started)
            .await
    }

    /// Send `sql` as one request and one transaction: the acquisition of
    /// `resource` first ($1–$7, see [`LockService::acquire_sql`]), the plan
    /// `id` as $8 and, for a `start`, its phase and reason as $9 and $10.
    /// The guard of the lease taken and the rows of each statement; `None`
    /// if the lease is held by someone else (the acquisition returned no
    /// row).
    ///
    /// [`LockService::acquire_sql`]: crate::locks::LockService
    async fn send_locked(
        &self,
        sql: &str,
        resource: &str,
        id: &str,
        operation: &str,
        start: Option<&Start>,
    ) -> Result<Option<(LockGuard, Vec<Vec<AnyRow>>)>, LifecycleError> {
        let ttl = self.options().lock_ttl;
        let mut query = self
            .locks()
            .bind_acquire(sqlx::query(sql), resource, self.owner(), operation, ttl)?
            .bind(id);
        if let Some(start) = start {
            query = query.bind(start.phase.to_string()).bind(&start.reason);
            if let Some(log) = &self.attempts {
                query = query.bind(log.worker.as_str());
            }
        }
        let sent_at = Instant::now();
        let groups = self.store.db().batch(query).await.map_err(db_error)?;
        let Some(grant) = groups.first().and_then(|rows| rows.first()) else {
            return Ok(None);
        };
        let guard = self
            .locks()
            .guard_from(grant, resource, self.owner(), ttl, sent_at)?;
        Ok(Some((guard, groups)))
    }

    /// The plan read (in `row` from column `at`) under `guard`, committed.
    async fn locked(
        &self,
        guard: LockGuard,
        read: Option<(&AnyRow, usize)>,
        id: &str,
        started: Option<i64>,
    ) -> Result<Option<Locked>, LifecycleError> {
        let read = match read {
            Some((row, at)) => Store::plan_read(row, at),
            None => Ok(None),
        };
        match read {
            Ok(Some(read)) => Ok(Some(Locked {
                guard,
                read,
                tx: None,
                changes: None,
                started,
            })),
            other => {
                let _ = guard.release().await;
                Err(match other {
                    Err(e) => e.into(),
                    _ => StoreError::NotFound(id.to_string()).into(),
                })
            }
        }
    }

    /// The apply lock, in the open transaction `tx` if there is one and the
    /// tree is free (one request); else `tx` is committed and the lock
    /// taken the ordinary way.
    pub(super) async fn lock_apply_in(
        &self,
        plan: &PlanRecord,
        operation: &str,
        tx: &mut Option<WriteTx>,
        guard: &LockGuard,
    ) -> Result<LockGuard, LifecycleError> {
        if let Some(open) = tx.as_mut() {
            let got = self
                .locks()
                .try_tree_in(
                    open,
                    &project_resource(&plan.project_id),
                    &plan.project_root,
                    self.owner(),
                    &format!("{operation} in {}", plan.project_root),
                    self.options().lock_ttl,
                )
                .await;
            match got {
                Ok(Some(project)) => return Ok(project),
                Ok(None) => settle(tx.take(), &[guard]).await,
                Err(e) => {
                    // The transaction is in an unknown state: roll it back.
                    drop(tx.take());
                    void(&[guard]);
                    return Err(e.into());
                }
            }
        }
        self.lock_apply(plan, operation).await
    }
}
