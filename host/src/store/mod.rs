//! Persistence of plans, events, step results, changesets and the apply
//! journal through sqlx, on SQLite (embedded default) or PostgreSQL.
//!
//! Every state write is versioned (`WHERE version = $seen`) and, when made
//! under a lease, fenced (the lease's token must still be current); it is
//! recorded in the append-only `plan_events` table in the same transaction.

mod db;
mod plans;

pub use db::{default_sqlite_url, redact, Backend, Db, SQLITE_BUSY_TIMEOUT};
pub use plans::{ChangeKind, ChangeRecord, EventRecord, PlanRecord, StateWrite, StepResult, Store};

/// A persistence failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported backend.
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// Connecting failed.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL (password redacted).
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// Running the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The plan changed since it was read (someone else wrote it).
    #[error("plan `{plan_id}` changed underneath (expected version {expected}, found {found})")]
    VersionConflict {
        /// The plan.
        plan_id: String,
        /// The version the writer saw.
        expected: i64,
        /// The version now stored.
        found: i64,
    },
    /// The writer's lease is no longer current: the write was refused.
    #[error("write to plan `{plan_id}` refused: the lease on `{resource}` (token {token}) is no longer current")]
    Fenced {
        /// The plan.
        plan_id: String,
        /// The lease's resource.
        resource: String,
        /// The stale token.
        token: i64,
    },
    /// No such plan.
    #[error("no plan with id `{0}`")]
    NotFound(String),
    /// Filesystem failure while preparing the database.
    #[error("{0}")]
    Io(String),
}
