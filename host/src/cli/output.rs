//! Rendering: errors (with exit codes), diffs, tables.

use std::io::IsTerminal;

use serde_json::json;

use crate::lifecycle::{LifecycleError, PluginError, PluginLockError};
use crate::locks::{format_ms, LockConflict, LockError};
use crate::store::{ChangeKind, ChangeRecord};
use crate::workspace::unified_diff;

/// Generic failure.
pub const EXIT_FAILURE: u8 = 1;
/// Bad command line (clap's own code).
pub const EXIT_USAGE: u8 = 2;
/// Another session holds a lock.
pub const EXIT_LOCK_CONFLICT: u8 = 3;
/// The command is not allowed from the plan's status.
pub const EXIT_INVALID_TRANSITION: u8 = 4;
/// Apply refused: files changed since Execute.
pub const EXIT_APPLY_DRIFT: u8 = 5;

/// An outcome the command has already printed in full (with `--json`, as
/// its one JSON document): only `message` goes to stderr, and only without
/// `--json`; the process exits with `code`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Reported {
    /// One line for stderr.
    pub message: String,
    /// The exit code.
    pub code: u8,
}

fn conflict_of(e: &anyhow::Error) -> Option<&LockConflict> {
    match e.downcast_ref::<LifecycleError>() {
        Some(LifecycleError::LockConflict(c)) => return Some(c),
        // A plugin that could not get a sub-resource lock reports the holder too.
        Some(LifecycleError::Plugin {
            source: PluginError::Lock(PluginLockError::Conflict(c)),
            ..
        }) => return Some(c),
        _ => {}
    }
    e.downcast_ref::<LockError>().and_then(LockError::conflict)
}

/// The exit code for an error.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(r) = e.downcast_ref::<Reported>() {
        return r.code;
    }
    if conflict_of(e).is_some() {
        return EXIT_LOCK_CONFLICT;
    }
    match e.downcast_ref::<LifecycleError>() {
        Some(LifecycleError::InvalidTransition(_)) => EXIT_INVALID_TRANSITION,
        Some(LifecycleError::ApplyDrift(_)) => EXIT_APPLY_DRIFT,
        _ => EXIT_FAILURE,
    }
}

/// Print an error: JSON on stdout with `--json`, else a message on stderr
/// that says what happened and what to do next.
pub fn print_error(e: &anyhow::Error, as_json: bool) {
    if let Some(r) = e.downcast_ref::<Reported>() {
        if !as_json {
            eprintln!("error: {}", r.message);
        }
        return;
    }
    if let Some(c) = conflict_of(e) {
        if as_json {
            println!(
                "{}",
                json!({ "error": {
                    "kind": "lock_conflict",
                    "resource": c.resource,
                    "owner": c.owner,
                    "operation": c.operation,
                    "holder": c.holder,
                    "acquired_at": format_ms(c.acquired_at),
                    "expires_at": format_ms(c.expires_at),
                    "acquired_at_ms": c.acquired_at,
                    "expires_at_ms": c.expires_at,
                }})
            );
        } else {
            eprintln!(
                "error: `{}` is locked by another session.\n  owner:     {}\n  holder:    {}\n  operation: {}\n  since:     {}\n  until:     {} (renewed while the holder is alive)\n\
                 Wait for it to finish, or retry with --lock-timeout 5m to wait.\n\
                 If the holder is gone for good, release the lock (its holder will be fenced out):\n  lockstep locks release {} --force",
                c.resource,
                c.owner,
                c.holder,
                c.operation,
                format_ms(c.acquired_at),
                format_ms(c.expires_at),
                c.resource
            );
        }
        return;
    }
    let kind = match e.downcast_ref::<LifecycleError>() {
        Some(LifecycleError::InvalidTransition(_)) => "invalid_transition",
        Some(LifecycleError::ApplyDrift(_)) => "apply_drift",
        Some(LifecycleError::NotFound(_)) => "not_found",
        Some(LifecycleError::Plugin { .. }) => "plugin",
        Some(LifecycleError::LockExpired { .. }) => "lock_expired",
        Some(LifecycleError::LeaseLost { .. }) => "lease_lost",
        Some(LifecycleError::InvalidAction(_)) => "invalid_action",
        Some(LifecycleError::InvalidChange(_)) => "invalid_change",
        _ => "error",
    };
    if as_json {
        let mut body = json!({ "kind": kind, "message": message(e) });
        match e.downcast_ref::<LifecycleError>() {
            Some(LifecycleError::ApplyDrift(d)) => body["files"] = json!(d),
            Some(LifecycleError::LeaseLost { current, .. }) => {
                body["status"] = json!(current.to_string())
            }
            _ => {}
        }
        println!("{}", json!({ "error": body }));
    } else {
        eprintln!("error: {}", message(e));
        match kind {
            "apply_drift" => eprintln!(
                "Nothing was written. Run `lockstep plan revert ID` and run the plan again."
            ),
            "plugin" | "lock_expired" => {
                eprintln!("The plan is errored; `lockstep plan retry ID` runs the phase again.")
            }
            "lease_lost" => eprintln!(
                "Another session carried the plan on and this session's result was not recorded; `lockstep plan status ID` shows the plan and its history."
            ),
            "invalid_change" => eprintln!(
                "Nothing was stored. The plan is errored; fix the plugin or the action, then `lockstep plan retry ID`."
            ),
            _ => {}
        }
    }
}

/// The error and its causes, each cause once: library errors often repeat
/// their source in their own message (`execute failed: {0}`), and a cause
/// whose text is already there adds nothing.
pub fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.is_empty() {
            text = cause;
        } else if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Whether to colour output on stdout.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A unified diff of a changeset, base → new.
pub fn diff(changes: &[ChangeRecord], colour: bool) -> String {
    let mut out = String::new();
    for c in changes {
        let old = c.base_contents.as_deref().unwrap_or_default();
        let new = match c.kind {
            ChangeKind::Write => c.contents.as_deref().unwrap_or_default(),
            ChangeKind::Delete => &[],
        };
        let from = if c.base_hash.is_some() {
            format!("a/{}", c.path)
        } else {
            "/dev/null".into()
        };
        let to = if c.kind == ChangeKind::Delete {
            "/dev/null".into()
        } else {
            format!("b/{}", c.path)
        };
        out.push_str(&paint(&unified_diff(old, new, &from, &to), colour));
    }
    out
}

/// `diff` with added lines green, removed ones red and hunk headers cyan.
pub fn paint(diff: &str, colour: bool) -> String {
    let mut out = String::with_capacity(diff.len());
    for line in diff.lines() {
        let painted = match (colour, line.as_bytes().first()) {
            (true, Some(b'+')) => format!("\x1b[32m{line}\x1b[0m"),
            (true, Some(b'-')) => format!("\x1b[31m{line}\x1b[0m"),
            (true, Some(b'@')) => format!("\x1b[36m{line}\x1b[0m"),
            _ => line.to_string(),
        };
        out.push_str(&painted);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::ChangeError;

    #[test]
    fn diffs_writes_creates_and_deletes() {
        let rec = |path: &str, base: Option<&str>, new: Option<&str>| ChangeRecord {
            path: path.into(),
            kind: if new.is_some() {
                ChangeKind::Write
            } else {
                ChangeKind::Delete
            },
            contents: new.map(|s| s.as_bytes().to_vec()),
            base_contents: base.map(|s| s.as_bytes().to_vec()),
            base_hash: base.map(|_| "h".into()),
            new_hash: None,
        };
        let d = diff(
            &[
                rec("a", Some("x\n"), Some("h\nx\n")),
                rec("n", None, Some("new\n")),
                rec("g", Some("old\n"), None),
            ],
            false,
        );
        assert!(d.contains("--- a/a\n+++ b/a\n"), "{d}");
        assert!(d.contains("+h\n"));
        assert!(d.contains("--- /dev/null\n+++ b/n\n"));
        assert!(
            d.contains("--- a/g\n+++ /dev/null\n") && d.contains("-old\n"),
            "{d}"
        );
    }

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let e = anyhow::Error::new(LifecycleError::InvalidChange(ChangeError::TooMany {
            limit: 3,
        }));
        let text = message(&e);
        assert_eq!(text.matches("more than 3 files").count(), 1, "{text}");
        let e = anyhow::anyhow!("disk full").context("reading `a.toml`");
        assert_eq!(message(&e), "reading `a.toml`: disk full");
    }
}
