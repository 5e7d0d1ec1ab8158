//! Plan rows and everything hanging off them.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::StoreError;
use crate::db::{Backend, Db};
use crate::locks::Fence;
use crate::model::{ChangeRecord, EventRecord, PlanProposal, PlanRecord, Status, StepResult};

/// A versioned, optionally fenced status change.
#[derive(Debug, Clone)]
pub struct StateWrite<'a> {
    /// The plan.
    pub plan_id: &'a str,
    /// The version the writer read.
    pub seen_version: i64,
    /// Status before.
    pub from: Status,
    /// Status after.
    pub to: Status,
    /// The writing session's owner id.
    pub actor: &'a str,
    /// The lease the write is made under.
    pub fence: Option<&'a Fence>,
    /// Why (goes into the event).
    pub reason: &'a str,
    /// New value for the error column.
    pub error: Option<&'a str>,
}

/// What a status write does to the stored proposal.
#[derive(Debug, Clone, Copy)]
enum Proposal<'a> {
    Keep,
    Set(&'a str),
    Clear,
}

/// The store: typed access to the tables.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

pub(super) const PLAN_COLUMNS: &str =
    "id, project_root, project_id, action_json, phase, state, version, lock_token, proposal_json, error, created_at, updated_at";

pub(super) fn plan_from_row(row: &AnyRow) -> Result<PlanRecord, StoreError> {
    let id: String = row.try_get(0)?;
    let what = |what: &str| format!("{what} of plan `{id}`");
    let action_json: String = row.try_get(3)?;
    let proposal_json: Option<String> = row.try_get(8)?;
    let phase: String = row.try_get(4)?;
    let state: String = row.try_get(5)?;
    Ok(PlanRecord {
        project_root: row.try_get(1)?,
        project_id: row.try_get(2)?,
        action: serde_json::from_str(&action_json)
            .map_err(|e| StoreError::corrupt(what("action"), e))?,
        status: Status::new(
            phase
                .parse()
                .map_err(|e| StoreError::corrupt(what("phase"), e))?,
            state
                .parse()
                .map_err(|e| StoreError::corrupt(what("state"), e))?,
        ),
        version: row.try_get(6)?,
        lock_token: row.try_get(7)?,
        proposal: proposal_json
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| StoreError::corrupt(what("proposal"), e))?,
        error: row.try_get(9)?,
        created_at: row.try_get(10)?,
        updated_at: row.try_get(11)?,
        id,
    })
}

impl Store {
    /// A store on `db`.
    pub fn new(db: Db) -> Self {
        Store { db }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Insert a new plan in strategize/queued and record its creation;
    /// returns the plan as stored.
    pub async fn insert_plan(
        &self,
        plan: &PlanRecord,
        actor: &str,
    ) -> Result<PlanRecord, StoreError> {
        let now = self.db.now_ms();
        let mut tx = self.db.begin_write().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO plans ({PLAN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 1, NULL, NULL, NULL, {now}, {now})
             RETURNING {PLAN_COLUMNS}"
        ))
        .bind(&plan.id)
        .bind(&plan.project_root)
        .bind(&plan.project_id)
        .bind(serde_json::to_string(&plan.action).map_err(|e| StoreError::corrupt("action", e))?)
        .bind(plan.status.phase.to_string())
        .bind(plan.status.state.to_string())
        .fetch_one(&mut *tx)
        .await?;
        let stored = plan_from_row(&row)?;
        self.event(&mut tx, &plan.id, actor, None, plan.status, "plan created")
            .await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// One plan, if it exists.
    pub async fn plan(&self, id: &str) -> Result<PlanRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        plan_from_row(&row)
    }

    /// Every plan, newest first.
    pub async fn list_plans(&self) -> Result<Vec<PlanRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans ORDER BY created_at DESC, id"
        ))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(plan_from_row).collect()
    }

    /// The plan's history, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, from_phase, from_state, to_phase, to_state, reason FROM plan_events WHERE plan_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status = |p: Option<String>, s: Option<String>| -> Result<_, StoreError> {
                    let bad = |e| StoreError::corrupt(format!("event status of plan `{id}`"), e);
                    match p.zip(s) {
                        Some((p, s)) => Ok(Some(Status::new(
                            p.parse().map_err(bad)?,
                            s.parse().map_err(bad)?,
                        ))),
                        None => Ok(None),
                    }
                };
                let to = status(r.try_get(4)?, r.try_get(5)?)?;
                Ok(EventRecord {
                    at: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    from: status(r.try_get(2)?, r.try_get(3)?)?,
                    to: to.ok_or_else(|| {
                        StoreError::corrupt(format!("event of plan `{id}`"), "no status")
                    })?,
                    reason: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// A status change and nothing else; returns the plan as written.
    pub async fn transition(&self, write: &StateWrite<'_>) -> Result<PlanRecord, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let plan = self.write_state(&mut tx, write, Proposal::Keep).await?;
        tx.commit().await?;
        Ok(plan)
    }

    /// Strategize finished: store the proposal with the status change.
    pub async fn complete_strategize(
        &self,
        write: &StateWrite<'_>,
        proposal: &PlanProposal,
    ) -> Result<PlanRecord, StoreError> {
        let json =
            serde_json::to_string(proposal).map_err(|e| StoreError::corrupt("proposal", e))?;
        let mut tx = self.db.begin_write().await?;
        let plan = self
            .write_state(&mut tx, write, Proposal::Set(&json))
            .await?;
        tx.commit().await?;
        Ok(plan)
    }

    /// Execute finished: replace the changeset and step results with the
    /// status change, atomically.
    pub async fn complete_execute(
        &self,
        write: &StateWrite<'_>,
        changes: &[ChangeRecord],
        steps: &[StepResult],
    ) -> Result<PlanRecord, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let plan = self.write_state(&mut tx, write, Proposal::Keep).await?;
        self.clear_execution(&mut tx, write.plan_id).await?;
        for (seq, c) in changes.iter().enumerate() {
            sqlx::query(
                "INSERT INTO changes (plan_id, seq, path, kind, contents, base_contents, base_hash, new_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(write.plan_id)
            .bind(seq as i64)
            .bind(&c.path)
            .bind(c.kind.to_string())
            .bind(c.contents.clone())
            .bind(c.base_contents.clone())
            .bind(c.base_hash.clone())
            .bind(c.new_hash.clone())
            .execute(&mut *tx)
            .await?;
        }
        for (idx, s) in steps.iter().enumerate() {
            sqlx::query(
                "INSERT INTO step_results (plan_id, idx, step_id, summary) VALUES ($1, $2, $3, $4)",
            )
            .bind(write.plan_id)
            .bind(idx as i64)
            .bind(&s.step_id)
            .bind(&s.summary)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(plan)
    }

    /// Revert: drop the changeset, results and proposal with the status change.
    pub async fn revert(&self, write: &StateWrite<'_>) -> Result<PlanRecord, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let plan = self.write_state(&mut tx, write, Proposal::Clear).await?;
        self.clear_execution(&mut tx, write.plan_id).await?;
        tx.commit().await?;
        Ok(plan)
    }

    async fn clear_execution(
        &self,
        tx: &mut Transaction<'static, Any>,
        plan_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM changes WHERE plan_id = $1")
            .bind(plan_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM step_results WHERE plan_id = $1")
            .bind(plan_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The stored changeset, in order.
    pub async fn changes(&self, plan_id: &str) -> Result<Vec<ChangeRecord>, StoreError> {
        let rows = sqlx::query("SELECT path, kind, contents, base_contents, base_hash, new_hash FROM changes WHERE plan_id = $1 ORDER BY seq")
            .bind(plan_id)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(1)?;
                Ok(ChangeRecord {
                    kind: kind.parse().map_err(|e| {
                        StoreError::corrupt(format!("change kind of plan `{plan_id}`"), e)
                    })?,
                    path: r.try_get(0)?,
                    contents: r.try_get(2)?,
                    base_contents: r.try_get(3)?,
                    base_hash: r.try_get(4)?,
                    new_hash: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// How many entries the plan's stored changeset has, counted by the
    /// database (no contents are read).
    pub async fn change_count(&self, plan_id: &str) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM changes WHERE plan_id = $1")
            .bind(plan_id)
            .fetch_one(&self.db.pool)
            .await?;
        usize::try_from(n).map_err(|e| StoreError::corrupt("change count", e))
    }

    /// The executed steps' summaries, in order.
    pub async fn step_results(&self, plan_id: &str) -> Result<Vec<StepResult>, StoreError> {
        let rows = sqlx::query(
            "SELECT step_id, summary FROM step_results WHERE plan_id = $1 ORDER BY idx",
        )
        .bind(plan_id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepResult {
                    step_id: r.try_get(0)?,
                    summary: r.try_get(1)?,
                })
            })
            .collect()
    }

    /// Journal the intent to apply, fenced by the plan lease, without a
    /// status change.
    pub async fn journal_apply(
        &self,
        plan_id: &str,
        actor: &str,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let now = self.db.now_ms();
        let cond = fence.condition(self.db.backend, 4);
        let sql = format!(
            "INSERT INTO apply_journal (plan_id, owner, token, started_at) SELECT $1, $2, $3, {now} WHERE {cond}"
        );
        // One statement: its own transaction.
        let query = sqlx::query(&sql)
            .bind(plan_id)
            .bind(actor)
            .bind(fence.token());
        let n = fence
            .bind(query)
            .execute(&self.db.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::fenced(plan_id, fence));
        }
        Ok(())
    }

    /// Whether an apply was journaled and not finished.
    pub async fn has_apply_journal(&self, plan_id: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apply_journal WHERE plan_id = $1")
            .bind(plan_id)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(n > 0)
    }

    /// Apply finished: clear the journal with the status change.
    pub async fn finish_apply(&self, write: &StateWrite<'_>) -> Result<PlanRecord, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let plan = self.write_state(&mut tx, write, Proposal::Keep).await?;
        sqlx::query("DELETE FROM apply_journal WHERE plan_id = $1")
            .bind(write.plan_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(plan)
    }

    /// The versioned, fenced status update plus its event, inside `tx`;
    /// returns the row as written.
    async fn write_state(
        &self,
        tx: &mut Transaction<'static, Any>,
        w: &StateWrite<'_>,
        proposal: Proposal<'_>,
    ) -> Result<PlanRecord, StoreError> {
        let (set_proposal, proposal_json) = match proposal {
            Proposal::Keep => (0i64, None),
            Proposal::Set(json) => (1, Some(json)),
            Proposal::Clear => (1, None),
        };
        let sql = state_write_sql(self.db.backend, w.fence);
        let query = sqlx::query(&sql)
            .bind(w.to.phase.to_string())
            .bind(w.to.state.to_string())
            .bind(w.plan_id)
            .bind(w.seen_version)
            .bind(w.from.phase.to_string())
            .bind(w.fence.map(Fence::token))
            .bind(w.error)
            .bind(w.actor)
            .bind(w.from.state.to_string())
            .bind(set_proposal)
            .bind(proposal_json)
            .bind(w.reason);
        let query = match w.fence {
            Some(fence) => fence.bind(query),
            None => query,
        };
        match query.fetch_all(&mut **tx).await?.into_iter().next() {
            Some(row) => plan_from_row(&row),
            None => Err(why_not_written(tx, w).await),
        }
    }

    async fn event(
        &self,
        tx: &mut Transaction<'static, Any>,
        plan_id: &str,
        actor: &str,
        from: Option<Status>,
        to: Status,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = self.db.now_ms();
        sqlx::query(&format!(
            "INSERT INTO plan_events (plan_id, at, actor, from_phase, from_state, to_phase, to_state, reason)
             VALUES ($1, {now}, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(plan_id)
        .bind(actor)
        .bind(from.map(|f| f.phase.to_string()))
        .bind(from.map(|f| f.state.to_string()))
        .bind(to.phase.to_string())
        .bind(to.state.to_string())
        .bind(reason)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// The status update and its event in one round trip: on PostgreSQL one
/// statement (the event inserted from the update's `RETURNING`), on SQLite
/// two statements sent together, the event inserted only if the update
/// changed the row. The caller's transaction makes both atomic. $1–$12 are
/// the write's values, the fence (if any) takes $13–$15.
fn state_write_sql(backend: Backend, fence: Option<&Fence>) -> String {
    let now = backend.now_ms();
    let fence = fence
        .map(|f| format!(" AND {}", f.condition(backend, 13)))
        .unwrap_or_default();
    let update = format!(
        "UPDATE plans SET phase = $1, state = $2, version = version + 1, lock_token = $6, error = $7, updated_at = {now},
                proposal_json = CASE WHEN $10 = 1 THEN $11 ELSE proposal_json END
         WHERE id = $3 AND version = $4 AND phase = $5 AND state = $9{fence}
         RETURNING {PLAN_COLUMNS}"
    );
    let event = "INSERT INTO plan_events (plan_id, at, actor, from_phase, from_state, to_phase, to_state, reason)";
    match backend {
        Backend::Sqlite => format!(
            "{update};\n{event} SELECT $3, {now}, $8, $5, $9, $1, $2, $12 WHERE changes() = 1"
        ),
        Backend::Postgres => format!(
            "WITH updated AS ({update}),
                  logged AS ({event} SELECT $3, {now}, $8, $5, $9, $1, $2, $12 FROM updated)
             SELECT * FROM updated"
        ),
    }
}

/// Why a state write changed no row: the plan is gone, its version moved,
/// or the fence refused the write.
async fn why_not_written(tx: &mut Transaction<'static, Any>, w: &StateWrite<'_>) -> StoreError {
    let found: Result<Option<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT version FROM plans WHERE id = $1")
            .bind(w.plan_id)
            .fetch_optional(&mut **tx)
            .await;
    match (found, w.fence) {
        (Err(e), _) => StoreError::Database(e),
        (Ok(None), _) => StoreError::NotFound(w.plan_id.to_string()),
        (Ok(Some(found)), Some(fence)) if found == w.seen_version => {
            StoreError::fenced(w.plan_id, fence)
        }
        (Ok(Some(found)), _) => StoreError::VersionConflict {
            plan_id: w.plan_id.to_string(),
            expected: w.seen_version,
            found,
        },
    }
}
