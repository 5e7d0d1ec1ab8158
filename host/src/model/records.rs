//! Plans and what hangs off them, as the store keeps them.

use std::fmt;
use std::str::FromStr;

use super::{Action, PlanProposal, Status, UnknownValue};

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
    /// Status before (none for creation); `phase/state` in JSON.
    #[serde(serialize_with = "opt_as_text")]
    pub from: Option<Status>,
    /// Status after; `phase/state` in JSON.
    #[serde(serialize_with = "as_text")]
    pub to: Status,
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

#[cfg(test)]
impl ChangeRecord {
    /// A write of `new` over `base` (`None`: the file was absent), for tests.
    pub(crate) fn test_write(path: &str, base: Option<&[u8]>, new: &[u8]) -> ChangeRecord {
        ChangeRecord {
            path: path.into(),
            kind: ChangeKind::Write,
            contents: Some(new.to_vec()),
            base_contents: base.map(<[u8]>::to_vec),
            base_hash: base.map(|_| "h".into()),
            new_hash: None,
        }
    }
}

/// What one executed step reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepResult {
    /// Step id.
    pub step_id: String,
    /// The executor's summary line.
    pub summary: String,
}

impl FromStr for ChangeKind {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "write" => Ok(ChangeKind::Write),
            "delete" => Ok(ChangeKind::Delete),
            _ => Err(UnknownValue::new("change kind", s)),
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Write => "write",
            ChangeKind::Delete => "delete",
        })
    }
}

/// Serialise a status (or none) as its `phase/state` text.
fn as_text<S: serde::Serializer, T: fmt::Display>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Serialise an optional status as its text, or `null`.
fn opt_as_text<S: serde::Serializer>(value: &Option<Status>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
