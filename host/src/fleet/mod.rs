//! The worker fleet: plans submitted as queued work, claimed and carried
//! out by any number of workers on any number of hosts sharing one
//! database, rescued when a worker dies (docs/operator-guide.md, "Running a
//! fleet").
//!
//! A submitted plan gets a row in `plan_queue`. A [`Worker`] claims the
//! next runnable plan with one statement that also takes the plan's lease
//! (a fresh fencing token), runs its phases through an ordinary
//! [`PlanLifecycleService`](crate::PlanLifecycleService) session whose
//! owner is the lease's owner, and records what happened fenced by that
//! token: a worker whose lease was taken over can no longer write. Plans on
//! one project run one at a time in submission order; apply waits for
//! [`approve`] unless the submission says `auto_apply`.

mod sql;
mod worker;

use std::path::{Path, PathBuf};

use sqlx::Row;

pub use worker::{Worker, WorkerOptions, WorkerSummary};

use crate::lifecycle::LifecycleError;
use crate::model::{Action, PlanRecord};
use crate::store::StoreError;
use crate::Container;
use sql::FleetSql;

/// The queue a submission goes to unless it names one.
pub const DEFAULT_QUEUE: &str = "default";
/// How many failed attempts a phase gets, by default, before the plan is
/// errored for good.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Where a project keeps its identity (a random id written at the first
/// submission): workers refuse a plan whose project, at the submitted path,
/// has another identity.
pub const IDENTITY_FILE: &str = ".lockstep/project-id";

/// A fleet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Creating or reading the plan failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The plan was never submitted to the queue.
    #[error(
        "plan `{0}` was not submitted to the queue (it is driven by `lockstep plan` commands)"
    )]
    NotQueued(String),
    /// The project's identity file could not be read or written.
    #[error("project identity {}: {source}", path.display())]
    Identity {
        /// The identity file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for FleetError {
    fn from(e: sqlx::Error) -> Self {
        FleetError::Store(StoreError::Database(e))
    }
}

/// What to submit.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The action.
    pub action: Action,
    /// The project directory (canonicalised; every worker must see the
    /// project at this path).
    pub project: PathBuf,
    /// The queue (workers serve the queues they are told to).
    pub queue: String,
    /// Higher runs first; ties in submission order.
    pub priority: i64,
    /// Apply without waiting for [`approve`].
    pub auto_apply: bool,
    /// A client-chosen key: submitting again with the same key returns the
    /// first submission's plan instead of a new one.
    pub idempotency_key: Option<String>,
    /// Failed attempts a phase gets before the plan is errored for good.
    pub max_attempts: u32,
}

impl Submission {
    /// A submission of `action` on `project` with the defaults: the default
    /// queue, priority 0, review before apply, no key.
    pub fn new(action: Action, project: impl Into<PathBuf>) -> Self {
        Submission {
            action,
            project: project.into(),
            queue: DEFAULT_QUEUE.to_string(),
            priority: 0,
            auto_apply: false,
            idempotency_key: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// The answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Submitted {
    /// The plan.
    pub plan_id: String,
    /// Whether an earlier submission with the same key was found (nothing
    /// new was queued).
    pub existing: bool,
}

/// A plan's place in the queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueEntry {
    /// The plan.
    pub plan_id: String,
    /// Its queue.
    pub queue: String,
    /// Its priority.
    pub priority: i64,
    /// Applies without approval.
    pub auto_apply: bool,
    /// Approved for apply.
    pub approved: bool,
    /// Failed attempts of the current phase.
    pub attempts: i64,
    /// The cap on them.
    pub max_attempts: i64,
    /// A cancellation was asked for.
    pub cancel_requested: bool,
    /// Applied, cancelled or errored for good.
    pub done: bool,
    /// Submitted (ms since the epoch, database clock).
    pub submitted_at: i64,
}

/// One attempt a worker made at a plan's phase.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    /// The phase.
    pub phase: String,
    /// The worker.
    pub worker: String,
    /// The lease owner (the worker's session for this claim).
    pub owner: String,
    /// The lease's fencing token.
    pub token: i64,
    /// Start (ms since the epoch, database clock).
    pub started_at: i64,
    /// End, if it ended where it could say so.
    pub ended_at: Option<i64>,
    /// `ok`, `failed`, `retry`, `lost`, `interrupted`, …
    pub outcome: Option<String>,
    /// The error, for an attempt that failed.
    pub error: Option<String>,
}

/// A registered worker, as `lockstep workers list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerInfo {
    /// `host:pid:random`.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
    /// lockstep version.
    pub version: String,
    /// Queues served, comma-joined.
    pub queues: String,
    /// Plans it may run at once.
    pub concurrency: i64,
    /// Plans it was running at its last heartbeat.
    pub running: i64,
    /// Started (ms since the epoch).
    pub started_at: i64,
    /// Last heartbeat (ms since the epoch).
    pub heartbeat_at: i64,
    /// `busy`, `idle`, `lost` (no heartbeat for a lease length) or `stopped`.
    pub state: String,
}

fn sql(container: &Container) -> FleetSql {
    FleetSql::new(container.store().db().backend)
}

/// Wake listening workers (PostgreSQL); workers on SQLite poll.
async fn notify(container: &Container, queue: &str) -> Result<(), FleetError> {
    if let Some(notify) = sql(container).notify {
        sqlx::query(notify)
            .bind(queue)
            .execute(&mut container.store().db().writer().await?)
            .await?;
    }
    Ok(())
}

/// The project's identity, created on first use (never through a
/// symlink: `create_new` refuses an existing name of any kind).
pub fn project_identity(root: &Path) -> Result<String, FleetError> {
    let path = root.join(IDENTITY_FILE);
    let err = |source| FleetError::Identity {
        path: path.clone(),
        source,
    };
    match read_identity(root) {
        Ok(Some(id)) => return Ok(id),
        Ok(None) => {}
        Err(e) => return Err(err(e)),
    }
    std::fs::create_dir_all(root.join(".lockstep")).map_err(err)?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            std::io::Write::write_all(&mut f, format!("{id}\n").as_bytes()).map_err(err)?;
            Ok(id)
        }
        // Another submission created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_identity(root)
            .map_err(err)?
            .ok_or_else(|| err(std::io::Error::other("identity file vanished"))),
        Err(e) => Err(err(e)),
    }
}

/// The identity recorded in the project, if any; a symlink or anything but
/// a regular file there is an error.
pub fn read_identity(root: &Path) -> std::io::Result<Option<String>> {
    let path = root.join(IDENTITY_FILE);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => Ok(Some(std::fs::read_to_string(&path)?.trim().to_string())),
        Ok(_) => Err(std::io::Error::other("not a regular file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Submit a plan as queued work; returns at once. Submitting again with
/// the same idempotency key returns the first plan.
pub async fn submit(container: &Container, s: Submission) -> Result<Submitted, FleetError> {
    let db = container.store().db();
    if let Some(key) = &s.idempotency_key {
        if let Some(plan_id) = by_key(container, key).await? {
            return Ok(Submitted {
                plan_id,
                existing: true,
            });
        }
    }
    let session = container.lifecycle();
    let plan = session.new_plan(s.action.clone(), &s.project).await?;
    let identity = {
        let root = PathBuf::from(&plan.project_root);
        tokio::task::spawn_blocking(move || project_identity(&root))
            .await
            .map_err(|e| FleetError::Identity {
                path: s.project.join(IDENTITY_FILE),
                source: std::io::Error::other(e),
            })??
    };
    let now = db.now_ms();
    let conflict = match db.backend {
        crate::db::Backend::Sqlite => "ON CONFLICT DO NOTHING",
        crate::db::Backend::Postgres => "ON CONFLICT (idempotency_key) DO NOTHING",
    };
    let inserted = sqlx::query(&format!(
        "INSERT INTO plan_queue (plan_id, queue, priority, project_id, identity, auto_apply, idempotency_key, max_attempts, run_after, submitted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {now}, {now}) {conflict}"
    ))
    .bind(&plan.id)
    .bind(&s.queue)
    .bind(s.priority)
    .bind(&plan.project_id)
    .bind(&identity)
    .bind(i64::from(s.auto_apply))
    .bind(&s.idempotency_key)
    .bind(i64::from(s.max_attempts.max(1)))
    .execute(&mut db.writer().await?)
    .await?
    .rows_affected();
    if inserted == 0 {
        // Lost a race on the key: the other submission's plan stands, ours
        // is cancelled so it never runs.
        session.cancel_plan(&plan.id).await?;
        let key = s.idempotency_key.as_deref().unwrap_or_default();
        let plan_id = by_key(container, key).await?.unwrap_or(plan.id);
        return Ok(Submitted {
            plan_id,
            existing: true,
        });
    }
    notify(container, &s.queue).await?;
    Ok(Submitted {
        plan_id: plan.id,
        existing: false,
    })
}

async fn by_key(container: &Container, key: &str) -> Result<Option<String>, FleetError> {
    Ok(
        sqlx::query_scalar("SELECT plan_id FROM plan_queue WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(container.store().db().reader())
            .await?,
    )
}

/// A submitted plan's queue entry.
pub async fn entry(container: &Container, plan_id: &str) -> Result<QueueEntry, FleetError> {
    let row = sqlx::query(
        "SELECT plan_id, queue, priority, auto_apply, approved, attempts, max_attempts, cancel_requested, done, submitted_at
         FROM plan_queue WHERE plan_id = $1",
    )
    .bind(plan_id)
    .fetch_optional(container.store().db().reader())
    .await?
    .ok_or_else(|| FleetError::NotQueued(plan_id.to_string()))?;
    Ok(QueueEntry {
        plan_id: row.try_get(0)?,
        queue: row.try_get(1)?,
        priority: row.try_get(2)?,
        auto_apply: row.try_get::<i64, _>(3)? != 0,
        approved: row.try_get::<i64, _>(4)? != 0,
        attempts: row.try_get(5)?,
        max_attempts: row.try_get(6)?,
        cancel_requested: row.try_get::<i64, _>(7)? != 0,
        done: row.try_get::<i64, _>(8)? != 0,
        submitted_at: row.try_get(9)?,
    })
}

/// How many submitted plans are not finished yet (queued, running, backing
/// off or waiting for approval): the queue depth to watch.
pub async fn pending(container: &Container) -> Result<u64, FleetError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plan_queue WHERE done = 0")
        .fetch_one(container.store().db().reader())
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Approve a submitted plan for apply (before or after it is executed).
pub async fn approve(container: &Container, plan_id: &str) -> Result<PlanRecord, FleetError> {
    let e = entry(container, plan_id).await?;
    sqlx::query("UPDATE plan_queue SET approved = 1 WHERE plan_id = $1")
        .bind(plan_id)
        .execute(&mut container.store().db().writer().await?)
        .await?;
    notify(container, &e.queue).await?;
    Ok(container.store().plan(plan_id).await?)
}

/// Take back a plan's approval: after a revert, the changeset a person
/// approved is gone, and the next one must be approved again.
pub async fn withdraw_approval(container: &Container, plan_id: &str) -> Result<(), FleetError> {
    entry(container, plan_id).await?;
    sqlx::query("UPDATE plan_queue SET approved = 0 WHERE plan_id = $1")
        .bind(plan_id)
        .execute(&mut container.store().db().writer().await?)
        .await?;
    Ok(())
}

/// Ask for a submitted plan to be cancelled: the worker running it stops
/// its plugin within one heartbeat and cancels it; a plan nobody runs is
/// cancelled by the next worker that looks (or by the caller, with
/// [`crate::PlanLifecycleService::cancel_plan`]).
pub async fn request_cancel(container: &Container, plan_id: &str) -> Result<(), FleetError> {
    let e = entry(container, plan_id).await?;
    sqlx::query("UPDATE plan_queue SET cancel_requested = 1 WHERE plan_id = $1")
        .bind(plan_id)
        .execute(&mut container.store().db().writer().await?)
        .await?;
    notify(container, &e.queue).await
}

/// Put a submitted plan that errored for good back in the queue with a
/// fresh attempt count (what `lockstep plan retry` does for such a plan).
pub async fn requeue(container: &Container, plan_id: &str) -> Result<(), FleetError> {
    let e = entry(container, plan_id).await?;
    let now = container.store().db().now_ms();
    sqlx::query(&format!(
        "UPDATE plan_queue SET done = 0, attempts = 0, drift_retries = 0, run_after = {now}, claimed_until = 0 WHERE plan_id = $1"
    ))
    .bind(plan_id)
    .execute(&mut container.store().db().writer().await?)
    .await?;
    notify(container, &e.queue).await
}

/// Every attempt workers made at a plan, oldest first.
pub async fn attempts(container: &Container, plan_id: &str) -> Result<Vec<Attempt>, FleetError> {
    let rows = sqlx::query(
        "SELECT phase, worker, owner, token, started_at, ended_at, outcome, error
         FROM plan_attempts WHERE plan_id = $1 ORDER BY id",
    )
    .bind(plan_id)
    .fetch_all(container.store().db().reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Attempt {
                phase: r.try_get(0)?,
                worker: r.try_get(1)?,
                owner: r.try_get(2)?,
                token: r.try_get(3)?,
                started_at: r.try_get(4)?,
                ended_at: r.try_get(5)?,
                outcome: r.try_get(6)?,
                error: r.try_get(7)?,
            })
        })
        .collect()
}

/// Every registered worker, newest first, with its state judged on the
/// database clock.
pub async fn workers(container: &Container) -> Result<Vec<WorkerInfo>, FleetError> {
    let db = container.store().db();
    let now = db.now_ms();
    let rows = sqlx::query(&format!(
        "SELECT id, host, pid, version, queues, concurrency, running, started_at, heartbeat_at,
                CASE WHEN stopped_at IS NOT NULL THEN 'stopped'
                     WHEN heartbeat_at + ttl_ms < {now} THEN 'lost'
                     WHEN running > 0 THEN 'busy' ELSE 'idle' END
         FROM workers ORDER BY started_at DESC, id"
    ))
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(WorkerInfo {
                id: r.try_get(0)?,
                host: r.try_get(1)?,
                pid: r.try_get(2)?,
                version: r.try_get(3)?,
                queues: r.try_get(4)?,
                concurrency: r.try_get(5)?,
                running: r.try_get(6)?,
                started_at: r.try_get(7)?,
                heartbeat_at: r.try_get(8)?,
                state: r.try_get(9)?,
            })
        })
        .collect()
}
