//! Plan rows and everything hanging off them.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Backend, Db, StoreError};
use crate::lifecycle::{Action, Phase, PlanProposal, State, Status};
use crate::locks::LockService;

/// A plan as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanRecord {
    /// Plan id.
    pub id: String,
    /// Canonical project root.
    pub project_root: String,
    /// Stable id of the project (lock scope).
    pub project_id: String,
    /// The action.
    pub action: Action,
    /// Phase and state.
    pub status: Status,
    /// Optimistic-concurrency version, bumped by every write.
    pub version: i64,
    /// Token of the lease under which the last write was made.
    pub lock_token: Option<i64>,
    /// The strategist's proposal, once strategized.
    pub proposal: Option<PlanProposal>,
    /// The last error, for errored plans.
    pub error: Option<String>,
    /// Creation time (ms since the epoch, database clock).
    pub created_at: i64,
    /// Last update (ms since the epoch, database clock).
    pub updated_at: i64,
}

/// One event of the append-only history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventRecord {
    /// When (ms since the epoch, database clock).
    pub at: i64,
    /// The session that made the change.
    pub actor: String,
    /// Status before (none for creation).
    pub from: Option<String>,
    /// Status after.
    pub to: String,
    /// Why.
    pub reason: String,
}

/// Write or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Write the contents.
    Write,
    /// Delete the file.
    Delete,
}

/// One entry of a stored changeset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeRecord {
    /// Normalised project-relative path.
    pub path: String,
    /// Write or delete.
    pub kind: ChangeKind,
    /// New contents (writes only).
    #[serde(skip)]
    pub contents: Option<Vec<u8>>,
    /// The target's contents when Execute read it (`None` = absent); kept
    /// for diffs after apply.
    #[serde(skip)]
    pub base_contents: Option<Vec<u8>>,
    /// Hash the target had when Execute read it; `None` = absent.
    pub base_hash: Option<String>,
    /// Hash of the new contents (writes only).
    pub new_hash: Option<String>,
}

/// What one executed step reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepResult {
    /// Step id.
    pub step_id: String,
    /// The executor's summary line.
    pub summary: String,
}

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
    /// The lease `(resource, token)` the write is made under.
    pub fence: Option<(&'a str, i64)>,
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
    locks: LockService,
}

const PLAN_COLUMNS: &str =
    "id, project_root, project_id, action_json, phase, state, version, lock_token, proposal_json, error, created_at, updated_at";

fn plan_from_row(row: &AnyRow) -> Result<PlanRecord, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    let action_json: String = row.try_get(3)?;
    let proposal_json: Option<String> = row.try_get(8)?;
    let phase: String = row.try_get(4)?;
    let state: String = row.try_get(5)?;
    Ok(PlanRecord {
        id: row.try_get(0)?,
        project_root: row.try_get(1)?,
        project_id: row.try_get(2)?,
        action: serde_json::from_str(&action_json).map_err(|e| corrupt(e.to_string()))?,
        status: Status::new(
            phase.parse::<Phase>().map_err(corrupt)?,
            state.parse::<State>().map_err(corrupt)?,
        ),
        version: row.try_get(6)?,
        lock_token: row.try_get(7)?,
        proposal: proposal_json
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?,
        error: row.try_get(9)?,
        created_at: row.try_get(10)?,
        updated_at: row.try_get(11)?,
    })
}

impl Store {
    /// A store on `db`; `locks` supplies the fencing condition.
    pub fn new(db: Db, locks: LockService) -> Self {
        Store { db, locks }
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
        .bind(serde_json::to_string(&plan.action).map_err(|e| StoreError::Corrupt(e.to_string()))?)
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
                let from_phase: Option<String> = r.try_get(2)?;
                let from_state: Option<String> = r.try_get(3)?;
                Ok(EventRecord {
                    at: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    from: from_phase.zip(from_state).map(|(p, s)| format!("{p}/{s}")),
                    to: format!(
                        "{}/{}",
                        r.try_get::<String, _>(4)?,
                        r.try_get::<String, _>(5)?
                    ),
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
            serde_json::to_string(proposal).map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
            .bind(match c.kind {
                ChangeKind::Write => "write",
                ChangeKind::Delete => "delete",
            })
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
                    path: r.try_get(0)?,
                    kind: if kind == "delete" {
                        ChangeKind::Delete
                    } else {
                        ChangeKind::Write
                    },
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
        usize::try_from(n).map_err(|_| StoreError::Corrupt(format!("change count {n}")))
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

    /// Journal the intent to apply (fenced by the plan lease in `write`'s
    /// fence, without a status change).
    pub async fn journal_apply(
        &self,
        plan_id: &str,
        actor: &str,
        fence: (&str, i64),
    ) -> Result<(), StoreError> {
        let now = self.db.now_ms();
        let cond = self.locks.fence_condition(4, 2, 5);
        // One statement: its own transaction.
        let n = sqlx::query(&format!(
            "INSERT INTO apply_journal (plan_id, owner, token, started_at) SELECT $1, $2, $3, {now} WHERE {cond}"
        ))
        .bind(plan_id)
        .bind(actor)
        .bind(fence.1)
        .bind(fence.0)
        .bind(fence.1)
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Fenced {
                plan_id: plan_id.into(),
                resource: fence.0.into(),
                token: fence.1,
            });
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
        let now = self.db.now_ms();
        let fence = match w.fence {
            Some(_) => format!(" AND {}", self.locks.fence_condition(8, 9, 6)),
            None => String::new(),
        };
        let (resource, token) = w
            .fence
            .map(|(r, t)| (Some(r), Some(t)))
            .unwrap_or((None, None));
        let (set_proposal, proposal_json) = match proposal {
            Proposal::Keep => (0i64, None),
            Proposal::Set(json) => (1, Some(json)),
            Proposal::Clear => (1, None),
        };
        // The status update and its event in one round trip: on PostgreSQL
        // one statement (the event inserted from the update's `RETURNING`),
        // on SQLite two statements sent together, the event inserted only
        // if the update changed the row. The caller's transaction makes
        // both atomic.
        let update = format!(
            "UPDATE plans SET phase = $1, state = $2, version = version + 1, lock_token = $6, error = $7, updated_at = {now},
                    proposal_json = CASE WHEN $11 = 1 THEN $12 ELSE proposal_json END
             WHERE id = $3 AND version = $4 AND phase = $5 AND state = $10{fence}
             RETURNING {PLAN_COLUMNS}"
        );
        let event = "INSERT INTO plan_events (plan_id, at, actor, from_phase, from_state, to_phase, to_state, reason)";
        let sql = match self.db.backend {
            Backend::Sqlite => format!(
                "{update};\n{event} SELECT $3, {now}, $9, $5, $10, $1, $2, $13 WHERE changes() = 1"
            ),
            Backend::Postgres => format!(
                "WITH updated AS ({update}),
                      logged AS ({event} SELECT $3, {now}, $9, $5, $10, $1, $2, $13 FROM updated)
                 SELECT * FROM updated"
            ),
        };
        let rows = sqlx::query(&sql)
            .bind(w.to.phase.to_string())
            .bind(w.to.state.to_string())
            .bind(w.plan_id)
            .bind(w.seen_version)
            .bind(w.from.phase.to_string())
            .bind(token)
            .bind(w.error)
            .bind(resource.unwrap_or(""))
            .bind(w.actor)
            .bind(w.from.state.to_string())
            .bind(set_proposal)
            .bind(proposal_json)
            .bind(w.reason)
            .fetch_all(&mut **tx)
            .await?;
        let row = rows.into_iter().next();
        let Some(row) = row else {
            let found: Option<i64> = sqlx::query_scalar("SELECT version FROM plans WHERE id = $1")
                .bind(w.plan_id)
                .fetch_optional(&mut **tx)
                .await?;
            return Err(match (found, w.fence) {
                (None, _) => StoreError::NotFound(w.plan_id.to_string()),
                (Some(found), _) if found != w.seen_version => StoreError::VersionConflict {
                    plan_id: w.plan_id.to_string(),
                    expected: w.seen_version,
                    found,
                },
                (Some(_), Some((resource, token))) => StoreError::Fenced {
                    plan_id: w.plan_id.to_string(),
                    resource: resource.to_string(),
                    token,
                },
                (Some(found), None) => StoreError::VersionConflict {
                    plan_id: w.plan_id.to_string(),
                    expected: w.seen_version,
                    found,
                },
            });
        };
        plan_from_row(&row)
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
