//! Conversions between the WIT types of the latest `lockstep:plugin` version
//! and the core types of [`crate::lifecycle`], [`crate::locks`] and
//! [`crate::workspace`]. Older versions' types are converted to the latest
//! ones first (`bindings/`).
//!
//! Strings a plugin hands back in errors are cut to [`MAX_MESSAGE_BYTES`] so
//! that a plugin cannot make the host store or print megabytes.
//!
//! What a plugin returns is checked against the call's [`Limits`] as it is
//! converted: steps per proposal, title and summary lengths, and the text of
//! a whole proposal. A result over a limit is refused whole with
//! [`PluginError::OverLimit`] naming the limit; it is never stored or
//! printed in part (a cut summary or a proposal missing steps would mislead
//! the reviewer more than a clear refusal).

use std::collections::{BTreeMap, HashMap};

use super::bindings::latest::lockstep::plugin::types as wit;
use super::limits::Limits;
use super::log::truncate;
use crate::lifecycle::{PluginError, PluginLockError};
use crate::locks::{Holder, LockConflict, LockError};
use crate::model::{Action, FileChange, PlanProposal, Step, StepOutcome};
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

/// A result over one of the call's limits, for `plugin`.
fn over(plugin: &str, limit: &'static str, max: u64, detail: String) -> PluginError {
    PluginError::OverLimit {
        plugin: plugin.to_string(),
        limit,
        max,
        detail: format!(
            "{detail}; return less, or ask the operator to raise `{limit}` in the policy (lockstep.toml)"
        ),
    }
}

/// Refuse `text` (`what`, for the message) if it is longer than `max`.
fn check_len(
    plugin: &str,
    limit: &'static str,
    max: u64,
    what: impl FnOnce() -> String,
    text: &str,
) -> Result<(), PluginError> {
    if text.len() as u64 > max {
        return Err(over(
            plugin,
            limit,
            max,
            format!("{} is {} bytes", what(), text.len()),
        ));
    }
    Ok(())
}

/// A strategist's proposal from `plugin`, within `limits`: at most
/// [`Limits::steps`] steps, a summary of at most [`Limits::summary_bytes`],
/// titles of at most [`Limits::title_bytes`], and at most
/// [`Limits::proposal_bytes`] of text in all. Repeated parameter keys keep
/// the last value.
pub fn proposal_from_wit(
    p: wit::PlanProposal,
    plugin: &str,
    limits: &Limits,
) -> Result<PlanProposal, PluginError> {
    let steps = p.steps.len() as u64;
    if steps > limits.steps {
        return Err(over(
            plugin,
            "steps",
            limits.steps,
            format!("the proposal has {steps} steps"),
        ));
    }
    check_len(
        plugin,
        "summary_bytes",
        limits.summary_bytes,
        || "the proposal's summary".into(),
        &p.summary,
    )?;
    let mut total = p.summary.len() as u64;
    for (i, step) in p.steps.iter().enumerate() {
        check_len(
            plugin,
            "title_bytes",
            limits.title_bytes,
            || format!("the title of step {}", i + 1),
            &step.title,
        )?;
        total = total
            .saturating_add((step.id.len() + step.title.len()) as u64)
            .saturating_add(
                step.params
                    .iter()
                    .map(|(k, v)| (k.len() + v.len()) as u64)
                    .sum(),
            )
            .saturating_add(step.targets.iter().map(|t| t.len() as u64).sum());
    }
    if total > limits.proposal_bytes {
        return Err(over(
            plugin,
            "proposal_bytes",
            limits.proposal_bytes,
            format!("the proposal holds {total} bytes of text (summary, step ids, titles, parameters and targets)"),
        ));
    }
    Ok(PlanProposal {
        summary: p.summary,
        steps: p.steps.into_iter().map(step_from_wit).collect(),
    })
}

/// An executor's outcome from `plugin`, its summary within
/// [`Limits::summary_bytes`]. Its changes are checked by the changeset
/// builder (paths, sizes, counts).
pub fn outcome_from_wit(
    o: wit::StepOutcome,
    plugin: &str,
    limits: &Limits,
) -> Result<StepOutcome, PluginError> {
    check_len(
        plugin,
        "summary_bytes",
        limits.summary_bytes,
        || "the step's summary".into(),
        &o.summary,
    )?;
    Ok(StepOutcome {
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
    })
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
        LockError::Database(_) | LockError::Contended { .. } | LockError::Task(_) => {
            wit::LockError::Unavailable(e.to_string())
        }
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
        let p = proposal_from_wit(
            wit::PlanProposal {
                summary: "s".into(),
                steps: vec![wit::Step {
                    id: "1".into(),
                    title: "t".into(),
                    params: vec![("k".into(), "a".into()), ("k".into(), "b".into())],
                    targets: vec![],
                }],
            },
            "p",
            &Limits::DEFAULT,
        )
        .unwrap();
        assert_eq!(p.steps[0].params["k"], "b");
    }

    fn step(title: String) -> wit::Step {
        wit::Step {
            id: "s".into(),
            title,
            params: vec![],
            targets: vec![],
        }
    }

    fn proposal(summary: String, steps: Vec<wit::Step>) -> wit::PlanProposal {
        wit::PlanProposal { summary, steps }
    }

    /// The limit named by a refusal.
    fn refused(r: Result<impl std::fmt::Debug, PluginError>) -> &'static str {
        match r {
            Err(PluginError::OverLimit { limit, .. }) => limit,
            other => panic!("expected an over-limit refusal, got {other:?}"),
        }
    }

    #[test]
    fn titles_are_capped_at_the_limit() {
        let l = Limits::DEFAULT;
        let at = proposal(
            String::new(),
            vec![step("t".repeat(l.title_bytes as usize))],
        );
        assert!(proposal_from_wit(at, "p", &l).is_ok());
        let over = proposal(
            String::new(),
            vec![step("t".repeat(l.title_bytes as usize + 1))],
        );
        assert_eq!(refused(proposal_from_wit(over, "p", &l)), "title_bytes");
    }

    #[test]
    fn summaries_over_the_cap_are_refused() {
        let l = Limits::DEFAULT;
        let n = l.summary_bytes as usize;
        assert!(proposal_from_wit(proposal("s".repeat(n), vec![]), "p", &l).is_ok());
        assert_eq!(
            refused(proposal_from_wit(
                proposal("s".repeat(n + 1), vec![]),
                "p",
                &l
            )),
            "summary_bytes"
        );
        let outcome = |summary: String| wit::StepOutcome {
            changes: vec![],
            summary,
        };
        assert!(outcome_from_wit(outcome("s".repeat(n)), "p", &l).is_ok());
        let e = outcome_from_wit(outcome("s".repeat(n + 1)), "hostile", &l).unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugin `hostile` exceeded the limit `summary_bytes` (4096): the step's summary is 4097 bytes; \
             return less, or ask the operator to raise `summary_bytes` in the policy (lockstep.toml)"
        );
    }

    #[test]
    fn steps_per_proposal_are_capped() {
        let l = Limits {
            steps: 3,
            ..Limits::DEFAULT
        };
        let steps = |n| (0..n).map(|_| step("t".into())).collect::<Vec<_>>();
        assert!(proposal_from_wit(proposal(String::new(), steps(3)), "p", &l).is_ok());
        assert_eq!(
            refused(proposal_from_wit(
                proposal(String::new(), steps(4)),
                "p",
                &l
            )),
            "steps"
        );
    }

    #[test]
    fn the_text_of_a_whole_proposal_is_capped() {
        let l = Limits {
            proposal_bytes: 10,
            ..Limits::DEFAULT
        };
        // summary 2 + id 1 + title 3 + param 2 + target 2 = 10 bytes.
        let with = |target: &str| {
            proposal(
                "ab".into(),
                vec![wit::Step {
                    id: "i".into(),
                    title: "ttt".into(),
                    params: vec![("k".into(), "v".into())],
                    targets: vec![target.into()],
                }],
            )
        };
        assert!(proposal_from_wit(with("xy"), "p", &l).is_ok());
        assert_eq!(
            refused(proposal_from_wit(with("xyz"), "p", &l)),
            "proposal_bytes"
        );
    }
}
