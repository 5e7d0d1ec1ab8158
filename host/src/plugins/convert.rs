//! Conversions between the WIT types of the latest `lockstep:plugin` version
//! and the core types of [`crate::lifecycle`], [`crate::locks`] and
//! [`crate::workspace`]. Older versions' types are converted to the latest
//! ones first (`bindings/`).
//!
//! Strings a plugin hands back in errors are cut to [`MAX_MESSAGE_BYTES`] so
//! that a plugin cannot make the host store or print megabytes.

use std::collections::{BTreeMap, HashMap};

use super::bindings::latest::lockstep::plugin::types as wit;
use super::log::truncate;
use crate::lifecycle::{
    Action, FileChange, PlanProposal, PluginError, PluginLockError, Step, StepOutcome,
};
use crate::locks::{Holder, LockConflict, LockError};
use crate::workspace::{EntryInfo, FsError};

/// Longest message kept from a plugin error.
pub const MAX_MESSAGE_BYTES: usize = 4096;

fn message(s: String) -> String {
    if s.len() <= MAX_MESSAGE_BYTES {
        s
    } else {
        format!("{}…", truncate(&s, MAX_MESSAGE_BYTES))
    }
}

fn params_to_wit(params: &BTreeMap<String, String>) -> Vec<wit::Param> {
    params.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn params_from_wit(params: Vec<wit::Param>) -> BTreeMap<String, String> {
    params.into_iter().collect()
}

/// The action as the strategist sees it.
pub fn action_to_wit(action: &Action) -> wit::Action {
    wit::Action {
        name: action.name.clone(),
        params: params_to_wit(&action.params),
    }
}

/// A step as the executor sees it.
pub fn step_to_wit(step: &Step) -> wit::Step {
    wit::Step {
        id: step.id.clone(),
        title: step.title.clone(),
        params: params_to_wit(&step.params),
        targets: step.targets.clone(),
    }
}

fn step_from_wit(step: wit::Step) -> Step {
    Step {
        id: step.id,
        title: step.title,
        params: params_from_wit(step.params),
        targets: step.targets,
    }
}

/// A strategist's proposal. Repeated parameter keys keep the last value.
pub fn proposal_from_wit(p: wit::PlanProposal) -> PlanProposal {
    PlanProposal {
        summary: p.summary,
        steps: p.steps.into_iter().map(step_from_wit).collect(),
    }
}

/// An executor's outcome.
pub fn outcome_from_wit(o: wit::StepOutcome) -> StepOutcome {
    StepOutcome {
        summary: o.summary,
        changes: o
            .changes
            .into_iter()
            .map(|c| match c {
                wit::Change::Write(w) => FileChange::Write {
                    path: w.path,
                    contents: w.contents,
                },
                wit::Change::Delete(path) => FileChange::Delete { path },
            })
            .collect(),
    }
}

/// A workspace refusal as the plugin sees it.
pub fn fs_error_to_wit(e: FsError) -> wit::FsError {
    match e {
        FsError::NotFound(p) => wit::FsError::NotFound(p),
        FsError::Denied(p) => wit::FsError::Denied(p),
        FsError::TooLarge(cap) => wit::FsError::TooLarge(cap),
        FsError::Invalid(m) => wit::FsError::Invalid(m),
        FsError::Io(m) => wit::FsError::Io(m),
    }
}

/// Workspace metadata as the plugin sees it.
pub fn entry_to_wit(e: EntryInfo) -> wit::FileInfo {
    wit::FileInfo {
        path: e.path,
        kind: if e.is_dir {
            wit::EntryKind::Directory
        } else {
            wit::EntryKind::File
        },
        size: e.size,
    }
}

/// A conflict as the plugin sees it: the holder becomes `host:pid`.
pub fn conflict_to_wit(c: &LockConflict) -> wit::LockConflict {
    wit::LockConflict {
        resource: c.resource.clone(),
        owner: c.owner.clone(),
        operation: c.operation.clone(),
        holder: format!("{}:{}", c.holder.host, c.holder.pid),
        acquired_at: c.acquired_at.max(0) as u64,
        expires_at: c.expires_at.max(0) as u64,
    }
}

/// A lock failure as the plugin sees it. Database failures become
/// `unavailable` (retrying may help); everything else keeps its kind.
pub fn lock_error_to_wit(e: &LockError) -> wit::LockError {
    match e {
        LockError::Conflict(c) | LockError::Timeout { conflict: c, .. } => {
            wit::LockError::Conflict(conflict_to_wit(c))
        }
        LockError::Expired { resource, token } => wit::LockError::Expired(wit::LockExpired {
            resource: resource.clone(),
            token: (*token).max(0) as u64,
        }),
        LockError::InvalidResource(_) => wit::LockError::Invalid(e.to_string()),
        LockError::Database(_) => wit::LockError::Unavailable(e.to_string()),
    }
}

/// A conflict reported by a plugin, back in core terms. When the host itself
/// reported this conflict during the call (`seen`, keyed by resource and
/// owner) the original is used, holder user name included; otherwise the
/// holder is parsed from `host:pid`.
pub fn conflict_from_wit(
    c: wit::LockConflict,
    seen: &HashMap<(String, String), LockConflict>,
) -> LockConflict {
    if let Some(original) = seen.get(&(c.resource.clone(), c.owner.clone())) {
        return original.clone();
    }
    let (host, pid) = match c.holder.rsplit_once(':') {
        Some((host, pid)) if pid.parse::<i64>().is_ok() => {
            (host.to_string(), pid.parse().unwrap_or(0))
        }
        _ => (c.holder.clone(), 0),
    };
    LockConflict {
        resource: message(c.resource),
        owner: message(c.owner),
        operation: message(c.operation),
        holder: Holder {
            host: message(host),
            pid,
            user: "unknown".into(),
        },
        acquired_at: i64::try_from(c.acquired_at).unwrap_or(i64::MAX),
        expires_at: i64::try_from(c.expires_at).unwrap_or(i64::MAX),
    }
}

/// A plugin's own error, in core terms.
pub fn plugin_error_from_wit(
    e: wit::PluginError,
    seen: &HashMap<(String, String), LockConflict>,
) -> PluginError {
    match e {
        wit::PluginError::InvalidInput(m) => PluginError::InvalidInput(message(m)),
        wit::PluginError::Retryable(m) => PluginError::Retryable(message(m)),
        wit::PluginError::Permanent(m) => PluginError::Permanent(message(m)),
        wit::PluginError::Lock(l) => PluginError::Lock(match l {
            wit::LockError::Conflict(c) => PluginLockError::Conflict(conflict_from_wit(c, seen)),
            wit::LockError::Expired(x) => PluginLockError::Expired {
                resource: message(x.resource),
                token: x.token,
            },
            wit::LockError::Invalid(m) => PluginLockError::Invalid(message(m)),
            wit::LockError::Unavailable(m) => PluginLockError::Unavailable(message(m)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict() -> LockConflict {
        LockConflict {
            resource: "project:p/res:db".into(),
            owner: "h:1:abcd".into(),
            operation: "execute plan x".into(),
            holder: Holder {
                host: "build-1".into(),
                pid: 42,
                user: "ci".into(),
            },
            acquired_at: 1_000,
            expires_at: 2_000,
        }
    }

    #[test]
    fn conflicts_round_trip() {
        let wit_conflict = conflict_to_wit(&conflict());
        assert_eq!(wit_conflict.holder, "build-1:42");
        let mut seen = HashMap::new();
        let parsed = conflict_from_wit(wit_conflict.clone(), &seen);
        assert_eq!(
            parsed.holder,
            Holder {
                host: "build-1".into(),
                pid: 42,
                user: "unknown".into()
            }
        );
        assert_eq!((parsed.acquired_at, parsed.expires_at), (1_000, 2_000));
        seen.insert((conflict().resource, conflict().owner), conflict());
        assert_eq!(conflict_from_wit(wit_conflict, &seen), conflict());
    }

    #[test]
    fn plugin_errors_map_and_are_capped() {
        let seen = HashMap::new();
        let e = plugin_error_from_wit(wit::PluginError::Permanent("x".repeat(10_000)), &seen);
        let PluginError::Permanent(m) = e else {
            panic!("{e:?}")
        };
        assert!(m.len() <= MAX_MESSAGE_BYTES + 4);
        let e = plugin_error_from_wit(
            wit::PluginError::Lock(wit::LockError::Conflict(conflict_to_wit(&conflict()))),
            &seen,
        );
        assert!(
            matches!(e, PluginError::Lock(PluginLockError::Conflict(c)) if c.resource == "project:p/res:db")
        );
    }

    #[test]
    fn params_keep_values() {
        let action = Action {
            name: "a".into(),
            strategy: "s".into(),
            executor: "e".into(),
            params: BTreeMap::from([("k".into(), "v".into())]),
        };
        assert_eq!(
            action_to_wit(&action).params,
            vec![("k".to_string(), "v".to_string())]
        );
        let p = proposal_from_wit(wit::PlanProposal {
            summary: "s".into(),
            steps: vec![wit::Step {
                id: "1".into(),
                title: "t".into(),
                params: vec![("k".into(), "a".into()), ("k".into(), "b".into())],
                targets: vec![],
            }],
        });
        assert_eq!(p.steps[0].params["k"], "b");
    }
}
