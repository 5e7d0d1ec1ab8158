//! Persistence of plans, events, step results, changesets and the apply
//! journal through sqlx, on SQLite (embedded default) or PostgreSQL.
//!
//! Every state write is versioned (`WHERE version = $seen`) and, when made
//! under a lease, fenced (the lease's token must still be current); it is
//! recorded in the append-only `plan_events` table in the same transaction.

mod page;
mod plans;

pub use page::{EventEntry, PlanFilter, PlanPage, PlanProject, ProjectPlans};
pub(crate) use plans::Completion;
pub use plans::{Attempts, PlanRead, StateWrite, Store, Then};

/// A persistence failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening the database failed.
    #[error(transparent)]
    Open(#[from] crate::db::DbError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value could not be decoded.
    #[error("corrupt stored {what}: {source}")]
    Corrupt {
        /// Which value, e.g. `action of plan p1`.
        what: String,
        /// What was wrong with it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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
}

impl StoreError {
    /// The write to `plan_id` under `fence` was refused: the lease is gone.
    pub fn fenced(plan_id: &str, fence: &crate::locks::Fence) -> Self {
        StoreError::Fenced {
            plan_id: plan_id.to_string(),
            resource: fence.resource().to_string(),
            token: fence.token(),
        }
    }

    /// A stored (or to-be-stored) value that does not decode.
    pub fn corrupt(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            source: source.into(),
        }
    }
}
