//! The lifecycle's error: what failed, named so callers (and the CLI's exit
//! codes) can tell a lock conflict from a drift from a bad transition.

use std::io;
use std::path::PathBuf;

use super::{ActionError, InvalidTransition, PluginError};
use crate::locks::{LockConflict, LockError};
use crate::model::{Phase, Status};
use crate::store::StoreError;
use crate::workspace::{ApplyError, ChangeError, Drift};

/// A lifecycle command failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Another session holds a lock the command needs.
    #[error("{0}")]
    LockConflict(Box<LockConflict>),
    /// The session's lease was lost while the phase ran; the phase was aborted.
    #[error("the lease on `{resource}` (token {token}) was lost while the phase ran; the phase was aborted")]
    LockExpired {
        /// The resource.
        resource: String,
        /// The lost token.
        token: i64,
    },
    /// This session's lease ran out (the process was stopped, or could not
    /// reach the database) and another session took the plan over and
    /// wrote it: the database refused this session's result. The plan is
    /// the other session's now; `current` is where it is.
    #[error("the lease on `{resource}` (token {token}) was lost to another session, which has since moved the plan on: this session's result was refused; the plan is now {current}")]
    LeaseLost {
        /// The resource.
        resource: String,
        /// The lost token.
        token: i64,
        /// The plan's status as the other session left it.
        current: Status,
        /// The refused write.
        #[source]
        source: StoreError,
    },
    /// The command is not allowed from the plan's status.
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// Apply found targets changed since Execute; nothing was written.
    #[error("apply refused: {} file(s) changed since the plan was executed: {}; nothing was written (revert and re-run the plan)", .0.len(), .0.iter().map(|d| d.path.as_str()).collect::<Vec<_>>().join(", "))]
    ApplyDrift(Vec<Drift>),
    /// A plugin failed; the phase is errored and may be retried.
    #[error("{phase} failed: {source}")]
    Plugin {
        /// The phase.
        phase: Phase,
        /// The plugin's error.
        source: PluginError,
    },
    /// An executor returned a change the host refuses.
    #[error("execute failed: {0}")]
    InvalidChange(#[from] ChangeError),
    /// The plan is unknown.
    #[error("no plan with id `{0}`")]
    NotFound(String),
    /// The action cannot become a plan: the file, its contents, the
    /// project directory or a plugin it names.
    #[error("invalid action: {0}")]
    InvalidAction(#[from] ActionError),
    /// A step panicked inside the host process.
    #[error("{phase} panicked: {message}")]
    Panicked {
        /// The phase.
        phase: Phase,
        /// The panic payload.
        message: String,
    },
    /// The session is shutting down; the phase was interrupted.
    #[error("interrupted by shutdown")]
    Interrupted,
    /// Persistence failed (includes fenced and version-conflicting writes).
    #[error(transparent)]
    Store(StoreError),
    /// Lock service failure other than a conflict.
    #[error("lock service: {0}")]
    Lock(#[source] LockError),
    /// The plan's project directory could not be opened.
    #[error("project `{}`: {source}", .root.display())]
    Project {
        /// The project root.
        root: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Apply (or the roll-forward of an interrupted apply) failed: a path
    /// that is no longer safe (a symlink appeared), a failed write, an
    /// apply that stopped part-way. A drift is [`LifecycleError::ApplyDrift`].
    #[error(transparent)]
    Apply(ApplyError),
}

impl From<ApplyError> for LifecycleError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Drift(d) => LifecycleError::ApplyDrift(d),
            other => LifecycleError::Apply(other),
        }
    }
}

impl From<LockError> for LifecycleError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Conflict(c) | LockError::Timeout { conflict: c, .. } => {
                LifecycleError::LockConflict(c)
            }
            LockError::Expired { resource, token } => {
                LifecycleError::LockExpired { resource, token }
            }
            other => LifecycleError::Lock(other),
        }
    }
}

impl From<StoreError> for LifecycleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => LifecycleError::NotFound(id),
            other => LifecycleError::Store(other),
        }
    }
}
