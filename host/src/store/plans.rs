//! Plan rows and everything hanging off them.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::StoreError;
use crate::db::{Backend, Db, Open, WriteTx};
use crate::locks::Fence;
use crate::model::{
    ChangeRecord, EventRecord, PlanProposal, PlanRecord, State, Status, StepResult,
};

/// Most changeset entries and step results written in the one request of
/// a phase's outcome (each takes up to 8 values; SQLite caps a statement
/// at 32 766).
const ROWS_PER_REQUEST: usize = 1000;

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
    /// Leases released in the same transaction, whether the write is made
    /// or refused (a phase's outcome and the end of its locks).
    pub release: &'a [Fence],
    /// A fleet worker's attempt records, kept by this write (fenced
    /// writes only; see [`Attempts`]).
    pub attempts: Option<&'a Attempts>,
}

/// A fleet worker's record of the phases it runs (`plan_attempts`), kept
/// in step with the plan by the status writes themselves rather than by
/// writes of its own: a write that starts a phase (to `*/processing`,
/// directly or by a hand-over) opens an attempt at that phase under the
/// write's lease token, and a phase's successful completion closes the
/// open one as `ok`. The write that leaves the plan applied also finishes
/// it in the queue (`done = 1`) and ends the leases it releases whatever
/// their holds (the claim's with the session's). Each is part of the
/// write's one request and guarded like it: a write refused by its fence
/// records nothing.
#[derive(Debug, Clone)]
pub struct Attempts {
    /// The worker's id.
    pub worker: String,
    /// A success also restarts the queue row's count of failed attempts
    /// (set when it is not zero).
    pub reset: bool,
}

/// The start of the next phase, written in the same request as the end of
/// the phase before it (a run of several phases under one plan lock): the
/// plan goes on from the write's `to` to `to` here, under the same fence,
/// with an event for each step (the version moves by two, as it would in
/// two writes).
#[derive(Debug, Clone, Copy)]
pub struct Then<'a> {
    /// The next phase's status (`*/processing`).
    pub to: Status,
    /// Why (goes into its event).
    pub reason: &'a str,
}

/// What a finished phase stores with its completing write.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Completion<'a> {
    /// Strategize: the proposal.
    Proposal(&'a PlanProposal),
    /// Execute: the changeset and each step's summary.
    Changes(&'a [ChangeRecord], &'a [StepResult]),
    /// Apply: the journal goes.
    Applied,
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
    plan_at(row, 0)
}

/// The plan in `row`'s columns from `at` on (in [`PLAN_COLUMNS`] order).
fn plan_at(row: &AnyRow, at: usize) -> Result<PlanRecord, StoreError> {
    let id: String = row.try_get(at)?;
    let what = |what: &str| format!("{what} of plan `{id}`");
    let action_json: String = row.try_get(at + 3)?;
    let proposal_json: Option<String> = row.try_get(at + 8)?;
    let phase: String = row.try_get(at + 4)?;
    let state: String = row.try_get(at + 5)?;
    Ok(PlanRecord {
        project_root: row.try_get(at + 1)?,
        project_id: row.try_get(at + 2)?,
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
        version: row.try_get(at + 6)?,
        lock_token: row.try_get(at + 7)?,
        proposal: proposal_json
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| StoreError::corrupt(what("proposal"), e))?,
        error: row.try_get(at + 9)?,
        created_at: row.try_get(at + 10)?,
        updated_at: row.try_get(at + 11)?,
        id,
    })
}

/// A plan read as part of a larger request (see [`Store::plan_sql`]).
#[derive(Debug, Clone)]
pub struct PlanRead {
    /// The plan.
    pub plan: PlanRecord,
    /// Whether an apply of it was journaled and not finished.
    pub journaled: bool,
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

    /// Insert a new plan in strategize/queued and record its creation, in
    /// one request; returns the plan as stored.
    pub async fn insert_plan(
        &self,
        plan: &PlanRecord,
        actor: &str,
    ) -> Result<PlanRecord, StoreError> {
        let now = self.db.now_ms();
        let insert = format!(
            "INSERT INTO plans ({PLAN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 1, NULL, NULL, NULL, {now}, {now})
             RETURNING {PLAN_COLUMNS}"
        );
        let event = "INSERT INTO plan_events (plan_id, at, actor, from_phase, from_state, to_phase, to_state, reason)";
        let sql = match self.db.backend {
            Backend::Sqlite => self.db.batch_sql(
                &[
                    &insert,
                    &format!("{event} VALUES ($1, {now}, $7, NULL, NULL, $5, $6, 'plan created')"),
                ],
                Open::Both,
            ),
            Backend::Postgres => format!(
                "WITH inserted AS ({insert}),
                      logged AS ({event} SELECT $1, {now}, $7, NULL, NULL, $5, $6, 'plan created' FROM inserted)
                 SELECT * FROM inserted"
            ),
        };
        let groups = self
            .db
            .batch(
                sqlx::query(&sql)
                    .bind(&plan.id)
                    .bind(&plan.project_root)
                    .bind(&plan.project_id)
                    .bind(
                        serde_json::to_string(&plan.action)
                            .map_err(|e| StoreError::corrupt("action", e))?,
                    )
                    .bind(plan.status.phase.to_string())
                    .bind(plan.status.state.to_string())
                    .bind(actor),
            )
            .await?;
        let row = groups
            .first()
            .and_then(|rows| rows.first())
            .ok_or_else(|| StoreError::corrupt("inserted plan", "no row returned"))?;
        plan_from_row(row)
    }

    /// The statement that reads plan `$id` and whether it has an apply
    /// journal, for a caller that sends it with others in one request (the
    /// plan lock and the plan in one round trip); decode its row with
    /// [`Store::plan_read`].
    pub(crate) fn plan_sql(id: usize) -> String {
        format!(
            "SELECT {} FROM plans p WHERE p.id = ${id}",
            Self::plan_read_columns("p")
        )
    }

    /// The columns [`Store::plan_read`] decodes, of the plan row `alias`.
    pub(crate) fn plan_read_columns(alias: &str) -> String {
        let columns: Vec<String> = PLAN_COLUMNS
            .split(", ")
            .map(|c| format!("{alias}.{c}"))
            .collect();
        format!(
            "{}, (SELECT COUNT(*) FROM apply_journal j WHERE j.plan_id = {alias}.id) AS journaled",
            columns.join(", ")
        )
    }

    /// The plan in a row of [`Store::plan_sql`] whose columns start at
    /// `at`; `None` if the plan does not exist (a `LEFT JOIN` found none).
    pub(crate) fn plan_read(row: &AnyRow, at: usize) -> Result<Option<PlanRead>, StoreError> {
        if row.try_get::<Option<String>, _>(at)?.is_none() {
            return Ok(None);
        }
        let journaled: i64 = row.try_get(at + 12)?;
        Ok(Some(PlanRead {
            plan: plan_at(row, at)?,
            journaled: journaled > 0,
        }))
    }

    /// One plan and whether it has an apply journal, in one statement.
    pub async fn read_plan(&self, id: &str) -> Result<PlanRead, StoreError> {
        let row = sqlx::query(&Self::plan_sql(1))
            .bind(id)
            .fetch_optional(self.db.reader())
            .await?;
        match row {
            Some(row) => Self::plan_read(&row, 0)?,
            None => None,
        }
        .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    /// One plan, if it exists.
    pub async fn plan(&self, id: &str) -> Result<PlanRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.reader())
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        plan_from_row(&row)
    }

    /// Every plan, newest first.
    pub async fn list_plans(&self) -> Result<Vec<PlanRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans ORDER BY created_at DESC, id"
        ))
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(plan_from_row).collect()
    }

    /// The plan's history, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, from_phase, from_state, to_phase, to_state, reason FROM plan_events WHERE plan_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.db.reader())
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

    /// A status change and nothing else (and the releases the write
    /// carries), in one request; returns the plan as written.
    pub async fn transition(&self, write: &StateWrite<'_>) -> Result<PlanRecord, StoreError> {
        let mut extra = Extra::default();
        extra.attempts(self.db.backend, write, None, false);
        self.write_state(write, Proposal::Keep, extra).await
    }

    /// [`Store::transition`] as the last request of the open transaction
    /// `tx` (SQLite), which it commits.
    pub(crate) async fn transition_in(
        &self,
        tx: &mut WriteTx,
        write: &StateWrite<'_>,
    ) -> Result<PlanRecord, StoreError> {
        let mut extra = Extra::default();
        extra.attempts(self.db.backend, write, None, false);
        let written = self
            .write_state_in(write, Proposal::Keep, extra, None, Some(tx))
            .await?;
        Ok(written.plan)
    }

    /// Strategize finished: store the proposal with the status change.
    pub async fn complete_strategize(
        &self,
        write: &StateWrite<'_>,
        proposal: &PlanProposal,
    ) -> Result<PlanRecord, StoreError> {
        let done = Completion::Proposal(proposal);
        Ok(self.complete(write, done, None, None).await?.plan)
    }

    /// Execute finished: replace the changeset and step results with the
    /// status change, atomically, in one request (a large changeset in one
    /// transaction of several).
    pub async fn complete_execute(
        &self,
        write: &StateWrite<'_>,
        changes: &[ChangeRecord],
        steps: &[StepResult],
    ) -> Result<PlanRecord, StoreError> {
        let done = Completion::Changes(changes, steps);
        Ok(self.complete(write, done, None, None).await?.plan)
    }

    /// A phase finished: store what it produced with the status change
    /// `write`, and with it, if `then` says so, start the next phase. The
    /// last request of the open transaction `tx` (SQLite), which it
    /// commits, if there is one. Returns the plan as written and whether it
    /// has an apply journal (known only with `then`: else `false`).
    pub(crate) async fn complete(
        &self,
        write: &StateWrite<'_>,
        done: Completion<'_>,
        then: Option<Then<'_>>,
        tx: Option<&mut WriteTx>,
    ) -> Result<PlanRead, StoreError> {
        let mut extra = Extra::default();
        let json;
        let proposal = match done {
            Completion::Proposal(proposal) => {
                json = serde_json::to_string(proposal)
                    .map_err(|e| StoreError::corrupt("proposal", e))?;
                Proposal::Set(&json)
            }
            Completion::Changes(changes, steps) => {
                if changes.len() + steps.len() > ROWS_PER_REQUEST {
                    return self
                        .complete_execute_large(write, changes, steps, then, tx)
                        .await;
                }
                extra.changeset(changes, steps);
                Proposal::Keep
            }
            Completion::Applied => {
                extra.statements =
                    vec!["DELETE FROM apply_journal WHERE plan_id = $3 AND {guard}".into()];
                Proposal::Keep
            }
        };
        extra.attempts(self.db.backend, write, then.as_ref(), true);
        self.write_state_in(write, proposal, extra, then.as_ref(), tx)
            .await
    }

    /// [`Store::complete_execute`] of a changeset too large for one
    /// request (a statement has a cap on its values): the status write
    /// first, then the rows one by one, in one transaction.
    /// `then` and `tx` as for [`Store::complete`].
    async fn complete_execute_large(
        &self,
        write: &StateWrite<'_>,
        changes: &[ChangeRecord],
        steps: &[StepResult],
        then: Option<Then<'_>>,
        tx: Option<&mut WriteTx>,
    ) -> Result<PlanRead, StoreError> {
        let mut own;
        let tx = match tx {
            Some(open) => open,
            None => {
                own = self.db.begin_write().await?;
                &mut own
            }
        };
        let mut extra = Extra::default();
        extra.attempts(self.db.backend, write, then.as_ref(), true);
        let statements = state_write_sql(self.db.backend, write, &extra, then.as_ref());
        let parts: Vec<&str> = statements.iter().map(String::as_str).collect();
        let sql = self.db.batch_sql(&parts, Open::Inside);
        let query = bind_write(sqlx::query(&sql), write, None, &extra, then.as_ref());
        let groups = tx.batch(query, false).await?;
        // The update's rows: after the attempt records' statements on
        // SQLite, the one statement's on PostgreSQL.
        let update = match self.db.backend {
            Backend::Sqlite => extra.statements.len(),
            Backend::Postgres => 0,
        };
        let Some(row) = groups.get(update).and_then(|rows| rows.first()) else {
            // Refused: nothing changed but the releases the write carries.
            tx.commit().await?;
            return Err(why_not_written(&self.db, write).await);
        };
        let written = written_row(row, then.is_some())?;
        replace_changeset(tx, write.plan_id, changes, steps).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// Revert: drop the changeset, results and proposal with the status change.
    pub async fn revert(&self, write: &StateWrite<'_>) -> Result<PlanRecord, StoreError> {
        let mut extra = Extra::default();
        extra.replace_rows("step_results", "idx", vec![], "");
        extra.replace_rows("changes", "seq", vec![], "");
        self.write_state(write, Proposal::Clear, extra).await
    }

    /// The stored changeset, in order.
    pub async fn changes(&self, plan_id: &str) -> Result<Vec<ChangeRecord>, StoreError> {
        let rows = sqlx::query(&Self::changes_sql(1))
            .bind(plan_id)
            .fetch_all(self.db.reader())
            .await?;
        Self::changes_from(&rows, plan_id)
    }

    /// The statement that reads plan `$id`'s changeset, in order, for a
    /// caller that sends it with others in one request; decode its rows
    /// with [`Store::changes_from`].
    pub(crate) fn changes_sql(id: usize) -> String {
        format!("SELECT path, kind, contents, base_contents, base_hash, new_hash FROM changes WHERE plan_id = ${id} ORDER BY seq")
    }

    /// The changeset in the rows of [`Store::changes_sql`].
    pub(crate) fn changes_from(
        rows: &[AnyRow],
        plan_id: &str,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
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
            .fetch_one(self.db.reader())
            .await?;
        usize::try_from(n).map_err(|e| StoreError::corrupt("change count", e))
    }

    /// The executed steps' summaries, in order.
    pub async fn step_results(&self, plan_id: &str) -> Result<Vec<StepResult>, StoreError> {
        let rows = sqlx::query(
            "SELECT step_id, summary FROM step_results WHERE plan_id = $1 ORDER BY idx",
        )
        .bind(plan_id)
        .fetch_all(self.db.reader())
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
            .execute(&mut self.db.writer().await?)
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
            .fetch_one(self.db.reader())
            .await?;
        Ok(n > 0)
    }

    /// Apply finished: clear the journal with the status change.
    pub async fn finish_apply(&self, write: &StateWrite<'_>) -> Result<PlanRecord, StoreError> {
        let done = Completion::Applied;
        Ok(self.complete(write, done, None, None).await?.plan)
    }

    /// The versioned, fenced status update plus its event, `extra`'s
    /// statements (made only if the update is) and the releases the write
    /// carries, as one request and one transaction; returns the row as
    /// written.
    async fn write_state(
        &self,
        w: &StateWrite<'_>,
        proposal: Proposal<'_>,
        extra: Extra,
    ) -> Result<PlanRecord, StoreError> {
        let written = self.write_state_in(w, proposal, extra, None, None).await?;
        Ok(written.plan)
    }

    /// [`Store::write_state`], going on to `then` if given; as the last
    /// request of the open transaction `tx` (SQLite), which it commits, if
    /// there is one.
    async fn write_state_in(
        &self,
        w: &StateWrite<'_>,
        proposal: Proposal<'_>,
        extra: Extra,
        then: Option<&Then<'_>>,
        tx: Option<&mut WriteTx>,
    ) -> Result<PlanRead, StoreError> {
        let (set_proposal, proposal_json) = match proposal {
            Proposal::Keep => (0i64, None),
            Proposal::Set(json) => (1, Some(json)),
            Proposal::Clear => (1, None),
        };
        let backend = self.db.backend;
        let statements = state_write_sql(backend, w, &extra, then);
        let open = if tx.is_some() {
            Open::Commit
        } else {
            Open::Both
        };
        let sql = match backend {
            Backend::Sqlite => {
                let parts: Vec<&str> = statements.iter().map(String::as_str).collect();
                self.db.batch_sql(&parts, open)
            }
            Backend::Postgres => statements.join(""),
        };
        let query = bind_write(
            sqlx::query(&sql),
            w,
            Some((set_proposal, proposal_json)),
            &extra,
            then,
        );
        let groups = match tx {
            Some(tx) => tx.batch(query, true).await?,
            None => self.db.batch(query).await?,
        };
        let update = match backend {
            Backend::Sqlite => extra.statements.len(),
            Backend::Postgres => 0,
        };
        match groups.get(update).and_then(|rows| rows.first()) {
            Some(row) => written_row(row, then.is_some()),
            None => Err(why_not_written(&self.db, w).await),
        }
    }
}

/// The plan a status write returned; with `journaled` the row also says
/// whether the plan has an apply journal (see [`state_write_sql`]).
fn written_row(row: &AnyRow, journaled: bool) -> Result<PlanRead, StoreError> {
    let journaled = journaled && row.try_get::<i64, _>(PLAN_COLUMNS.split(", ").count())? > 0;
    Ok(PlanRead {
        plan: plan_from_row(row)?,
        journaled,
    })
}

/// Bind a status write's values (see [`state_write_sql`]); `proposal`:
/// whether to set the proposal, and to what (`None`: keep it).
fn bind_write<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    w: &'q StateWrite<'q>,
    proposal: Option<(i64, Option<&'q str>)>,
    extra: &'q Extra,
    then: Option<&'q Then<'q>>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let (set_proposal, proposal_json) = proposal.unwrap_or((0, None));
    let mut query = query
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
    if let Some(fence) = w.fence {
        query = fence.bind(query);
    }
    for fence in w.release {
        query = fence.bind(query);
    }
    if let Some(then) = then {
        query = query
            .bind(then.to.phase.to_string())
            .bind(then.to.state.to_string())
            .bind(then.reason);
    }
    for value in &extra.binds {
        query = value.bind(query);
    }
    query
}

/// A value bound to a statement of an [`Extra`].
#[derive(Debug, Clone)]
enum Bind {
    Int(i64),
    Text(String),
    OptText(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Bind {
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            Bind::Int(v) => query.bind(*v),
            Bind::Text(v) => query.bind(v.as_str()),
            Bind::OptText(v) => query.bind(v.as_deref()),
            Bind::Bytes(v) => query.bind(v.as_deref()),
        }
    }
}

/// Statements a status write makes besides the update and its event,
/// each guarded by the update's own conditions (`{guard}` in the text) so
/// that they change something exactly when the update does. Their values
/// are written `{n}`, numbered from 0, and bound after the write's own.
#[derive(Debug, Default)]
struct Extra {
    statements: Vec<String>,
    binds: Vec<Bind>,
}

impl Extra {
    /// Make `changes` and `steps` the plan's changeset and step results.
    fn changeset(&mut self, changes: &[ChangeRecord], steps: &[StepResult]) {
        self.replace_rows(
            "step_results (plan_id, idx, step_id, summary)",
            "idx",
            steps
                .iter()
                .map(|s| vec![Bind::Text(s.step_id.clone()), Bind::Text(s.summary.clone())])
                .collect(),
            "step_id = excluded.step_id, summary = excluded.summary",
        );
        self.replace_rows(
            "changes (plan_id, seq, path, kind, contents, base_contents, base_hash, new_hash)",
            "seq",
            changes
                .iter()
                .map(|c| {
                    vec![
                        Bind::Text(c.path.clone()),
                        Bind::Text(c.kind.to_string()),
                        Bind::Bytes(c.contents.clone()),
                        Bind::Bytes(c.base_contents.clone()),
                        Bind::OptText(c.base_hash.clone()),
                        Bind::OptText(c.new_hash.clone()),
                    ]
                })
                .collect(),
            "path = excluded.path, kind = excluded.kind, contents = excluded.contents,
     base_contents = excluded.base_contents, base_hash = excluded.base_hash, new_hash = excluded.new_hash",
        );
    }

    /// The attempt records `w` keeps (see [`Attempts`]): the open attempt
    /// closed as `ok` if the write `completes` its phase, one opened at
    /// the phase the write leaves the plan processing, if it does. The
    /// fence's owner and token are `$14` and `$15`. On PostgreSQL both
    /// take the statement's start as their instant, so that an attempt
    /// closed and the next one opened in one write meet exactly.
    fn attempts(
        &mut self,
        backend: Backend,
        w: &StateWrite<'_>,
        then: Option<&Then<'_>>,
        completes: bool,
    ) {
        let (Some(attempts), Some(_)) = (w.attempts, w.fence) else {
            return;
        };
        let now = match backend {
            Backend::Sqlite => backend.now_ms(),
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)",
        };
        if completes {
            self.statements.push(format!(
                "UPDATE plan_attempts SET ended_at = {now}, outcome = 'ok'
                 WHERE plan_id = $3 AND token = $15 AND ended_at IS NULL AND {{guard}}"
            ));
            if attempts.reset {
                self.statements.push(
                    "UPDATE plan_queue SET attempts = 0 WHERE plan_id = $3 AND {guard}".into(),
                );
            }
        }
        if finishes_claim(w, then) {
            self.statements
                .push("UPDATE plan_queue SET done = 1 WHERE plan_id = $3 AND {guard}".into());
        }
        let lands = lands(w, then);
        if lands.state == State::Processing {
            let (phase, worker) = (self.binds.len(), self.binds.len() + 1);
            self.statements.push(format!(
                "INSERT INTO plan_attempts (plan_id, phase, worker, owner, token, started_at)
                 SELECT $3, {{{phase}}}, {{{worker}}}, $14, $15, {now} WHERE {{guard}}"
            ));
            self.binds.push(Bind::Text(lands.phase.to_string()));
            self.binds.push(Bind::Text(attempts.worker.clone()));
        }
    }

    /// Make `rows` (the values after `plan_id` and the index) the plan's
    /// rows of `table`: each upserted at its index, those beyond deleted.
    fn replace_rows(&mut self, table: &str, index: &str, rows: Vec<Vec<Bind>>, update: &str) {
        let name = table.split(' ').next().unwrap_or(table);
        self.statements.push(format!(
            "DELETE FROM {name} WHERE plan_id = $3 AND {index} >= {{{}}} AND {{guard}}",
            self.binds.len()
        ));
        self.binds.push(Bind::Int(rows.len() as i64));
        if rows.is_empty() {
            return;
        }
        let mut values = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let mut cells = vec!["$3".to_string(), format!("{{{}}}", self.binds.len())];
            self.binds.push(Bind::Int(i as i64));
            for value in row {
                cells.push(format!("{{{}}}", self.binds.len()));
                self.binds.push(value);
            }
            values.push(format!("({})", cells.join(", ")));
        }
        self.statements.push(format!(
            "INSERT INTO {table} SELECT * FROM (VALUES {}) AS v WHERE {{guard}}
             ON CONFLICT (plan_id, {index}) DO UPDATE SET {update}",
            values.join(", ")
        ));
    }
}

/// The statements of a status write: `extra`'s, the update and its event,
/// the releases. On PostgreSQL one statement (every part a `WITH` clause
/// of the update, the event inserted from its `RETURNING`), on SQLite
/// statements sent together in one transaction, the event inserted only if
/// the update changed the row. $1–$12 are the write's values, the fence (if
/// any) takes the next three, each release three more, `then` (if any)
/// three more (its phase, state and reason), then `extra`'s.
///
/// With `then`, the update goes on to `then`'s status (the version moves
/// by two), a second event records that step, and the row returned also
/// says whether the plan has an apply journal (after the plan's columns).
fn state_write_sql(
    backend: Backend,
    w: &StateWrite<'_>,
    extra: &Extra,
    then: Option<&Then<'_>>,
) -> Vec<String> {
    let now = backend.now_ms();
    let mut next = 13;
    let fence = match w.fence {
        Some(f) => {
            next += 3;
            format!(" AND {}", f.condition(backend, 13))
        }
        None => String::new(),
    };
    let guard = format!(
        "EXISTS (SELECT 1 FROM plans WHERE id = $3 AND version = $4 AND phase = $5 AND state = $9){fence}"
    );
    // A worker's plan applied: the claim's lease ends with the session's
    // holds (see `Attempts`).
    let finishes = finishes_claim(w, then);
    let releases: Vec<String> = w
        .release
        .iter()
        .flat_map(|_| {
            let first = next;
            next += 3;
            match finishes {
                true => vec![crate::locks::end_sql(first)],
                false => crate::locks::release_sql(backend, first),
            }
        })
        .collect();
    let (to_phase, to_state, to_reason, steps) = destination(then, &mut next);
    let extra_sql = extra.sql_on(backend, &guard, next);
    let journaled = match then {
        Some(_) => {
            ", (SELECT COUNT(*) FROM apply_journal j WHERE j.plan_id = plans.id) AS journaled"
        }
        None => "",
    };
    let update = format!(
        "UPDATE plans SET phase = {to_phase}, state = {to_state}, version = version + {steps}, lock_token = $6, error = $7, updated_at = {now},
                proposal_json = CASE WHEN $10 = 1 THEN $11 ELSE proposal_json END
         WHERE id = $3 AND version = $4 AND phase = $5 AND state = $9{fence}
         RETURNING {PLAN_COLUMNS}{journaled}"
    );
    let done = format!("$3, {now}, $8, $5, $9, $1, $2, $12");
    let started =
        then.map(|_| format!("$3, {now}, $8, $1, $2, {to_phase}, {to_state}, {to_reason}"));
    assemble(
        backend,
        extra_sql,
        update,
        &done,
        started.as_deref(),
        releases,
    )
}

impl Extra {
    /// [`Extra::sql`] for `backend`. On PostgreSQL (one statement) the
    /// guard is judged once, by a first `WITH` clause (`extra0`) the
    /// others read, instead of once per clause.
    fn sql_on(&self, backend: Backend, guard: &str, first: usize) -> Vec<String> {
        match backend {
            Backend::Postgres if !self.statements.is_empty() => {
                let mut sql = vec![format!("SELECT {guard} AS ok")];
                sql.extend(self.sql("(SELECT ok FROM extra0)", first));
                sql
            }
            _ => self.sql(guard, first),
        }
    }

    /// The extra statements with `{guard}` replaced by `guard` and their
    /// placeholders `{i}` numbered from `$first`.
    fn sql(&self, guard: &str, first: usize) -> Vec<String> {
        self.statements
            .iter()
            .map(|sql| {
                let mut sql = sql.replace("{guard}", guard);
                for i in (0..self.binds.len()).rev() {
                    sql = sql.replace(&format!("{{{i}}}"), &format!("${}", first + i));
                }
                sql
            })
            .collect()
    }
}

/// Whether `w` leaves a fleet worker's plan applied: it then finishes the
/// plan in the queue and ends the claim's lease (see [`Attempts`]).
fn finishes_claim(w: &StateWrite<'_>, then: Option<&Then<'_>>) -> bool {
    w.attempts.is_some() && w.fence.is_some() && lands(w, then).state == State::Applied
}

/// The status a write leaves the plan in: `then`'s if it goes on, else
/// its own.
fn lands(w: &StateWrite<'_>, then: Option<&Then<'_>>) -> Status {
    then.map_or(w.to, |then| then.to)
}

/// Where a status write leaves the plan: `then`'s phase, state and reason
/// (bound from `$next`, which moves past them) and a version step of two,
/// else the write's own status (`$1`, `$2`) and a step of one.
fn destination(then: Option<&Then<'_>>, next: &mut usize) -> (String, String, String, i64) {
    match then {
        Some(_) => {
            let first = *next;
            *next += 3;
            (
                format!("${first}"),
                format!("${}", first + 1),
                format!("${}", first + 2),
                2,
            )
        }
        None => ("$1".into(), "$2".into(), String::new(), 1),
    }
}

/// The statements of a status write from its parts: the `extra` ones, the
/// update, the event of the write (`done`'s values) and, with `started`,
/// the event of the next step, then the releases.
fn assemble(
    backend: Backend,
    extra_sql: Vec<String>,
    update: String,
    done: &str,
    started: Option<&str>,
    releases: Vec<String>,
) -> Vec<String> {
    let event = "INSERT INTO plan_events (plan_id, at, actor, from_phase, from_state, to_phase, to_state, reason)";
    match backend {
        Backend::Sqlite => {
            let mut all = extra_sql;
            all.push(update);
            all.push(format!("{event} SELECT {done} WHERE changes() = 1"));
            if let Some(started) = started {
                // Made exactly when the first event was.
                all.push(format!("{event} SELECT {started} WHERE changes() = 1"));
            }
            all.extend(releases);
            all
        }
        Backend::Postgres => {
            let logged = match started {
                None => format!("{event} SELECT {done} FROM updated"),
                // Both events in their order (ids are given in it).
                Some(started) => format!(
                    "{event} SELECT plan_id, at, actor, from_phase, from_state, to_phase, to_state, reason
                     FROM (SELECT 1 AS n, {done} FROM updated UNION ALL SELECT 2, {started} FROM updated)
                          AS e (n, plan_id, at, actor, from_phase, from_state, to_phase, to_state, reason)
                     ORDER BY n"
                ),
            };
            vec![one_statement(&extra_sql, &update, &logged, &releases)]
        }
    }
}

/// PostgreSQL: a status write as one statement, every part a `WITH`
/// clause of the update.
fn one_statement(extra: &[String], update: &str, logged: &str, releases: &[String]) -> String {
    let mut with: Vec<String> = extra
        .iter()
        .enumerate()
        .map(|(i, sql)| format!("extra{i} AS ({sql})"))
        .collect();
    with.push(format!("updated AS ({update})"));
    with.push(format!("logged AS ({logged})"));
    for (i, release) in releases.iter().enumerate() {
        with.push(format!("released{i} AS ({release})"));
    }
    format!("WITH {} SELECT * FROM updated", with.join(",\n"))
}

/// Why a state write changed no row: the plan is gone, its version moved,
/// or the fence refused the write.
async fn why_not_written(db: &Db, w: &StateWrite<'_>) -> StoreError {
    let found: Result<Option<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT version FROM plans WHERE id = $1")
            .bind(w.plan_id)
            .fetch_optional(db.reader())
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

/// Replace the stored changeset and step results of `plan_id` in `tx`, a
/// row per statement.
async fn replace_changeset(
    tx: &mut WriteTx,
    plan_id: &str,
    changes: &[ChangeRecord],
    steps: &[StepResult],
) -> Result<(), StoreError> {
    for table in ["changes", "step_results"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE plan_id = $1"))
            .bind(plan_id)
            .execute(tx.conn())
            .await?;
    }
    for (seq, c) in changes.iter().enumerate() {
        sqlx::query(
                "INSERT INTO changes (plan_id, seq, path, kind, contents, base_contents, base_hash, new_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(plan_id)
            .bind(seq as i64)
            .bind(&c.path)
            .bind(c.kind.to_string())
            .bind(c.contents.as_deref())
            .bind(c.base_contents.as_deref())
            .bind(c.base_hash.as_deref())
            .bind(c.new_hash.as_deref())
            .execute(tx.conn())
            .await?;
    }
    for (idx, s) in steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO step_results (plan_id, idx, step_id, summary) VALUES ($1, $2, $3, $4)",
        )
        .bind(plan_id)
        .bind(idx as i64)
        .bind(&s.step_id)
        .bind(&s.summary)
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}
