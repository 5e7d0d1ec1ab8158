//! Lock errors: who holds what, and what a caller can do about it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a lock holder runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
    /// OS user name.
    pub user: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} pid {}", self.user, self.host, self.pid)
    }
}

/// Another session holds the lock that was asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockConflict {
    /// The contested resource (`plan:<id>`, `project:<id>`, …).
    pub resource: String,
    /// The session that holds it.
    pub owner: String,
    /// What the holder is doing.
    pub operation: String,
    /// Where the holder runs.
    pub holder: Holder,
    /// When the holder acquired it (ms since the epoch, database clock).
    pub acquired_at: i64,
    /// When the lease runs out unless renewed (ms since the epoch).
    pub expires_at: i64,
}

/// Format milliseconds since the epoch as RFC 3339 (UTC).
pub fn format_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Milliseconds since the epoch on this machine's clock (for display only).
pub fn local_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl fmt::Display for LockConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is locked by session {} ({}) for `{}` since {} until {}",
            self.resource,
            self.owner,
            self.holder,
            self.operation,
            format_ms(self.acquired_at),
            format_ms(self.expires_at)
        )
    }
}

/// A lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another session holds the lock.
    #[error("lock conflict: {0}")]
    Conflict(Box<LockConflict>),
    /// The lease was lost (expired and taken over, or force-released).
    #[error(
        "the lease on `{resource}` (token {token}) was lost: it expired or was force-released"
    )]
    Expired {
        /// The resource.
        resource: String,
        /// The token the lost lease carried.
        token: i64,
    },
    /// The resource name is malformed.
    #[error("invalid lock resource `{0}`: use letters, digits and `-_.:/`, at most 200 bytes")]
    InvalidResource(String),
    /// Waiting for the lock ran out of time; the last conflict is attached.
    #[error("gave up after waiting {waited:?}: {conflict}")]
    Timeout {
        /// How long we waited.
        waited: Duration,
        /// The holder at the last attempt.
        conflict: Box<LockConflict>,
    },
    /// The lock changed hands between our attempt and our look at its
    /// holder, several times in a row.
    #[error("the lock on `{resource}` kept changing hands; try again")]
    Contended {
        /// The resource.
        resource: String,
    },
    /// A background lock task (a detached release) failed to run.
    #[error("a background lock task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The database failed.
    #[error("lock service database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl LockError {
    /// The conflict, if this error is (or ended with) one.
    pub fn conflict(&self) -> Option<&LockConflict> {
        match self {
            LockError::Conflict(c) | LockError::Timeout { conflict: c, .. } => Some(c),
            _ => None,
        }
    }
}
