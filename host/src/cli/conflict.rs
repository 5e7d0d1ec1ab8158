//! The message for a lock conflict: what is held, by whom, until when, and
//! what the user can do, which depends on the kind of lock.
//!
//! - The plan lock (`plan:<id>`) and the project's tree lock
//!   (`project:<id>`, held while a plan is applied or reverted) are taken
//!   by the host, which renews them while their holder runs and waits for
//!   them when asked to (`--lock-timeout`).
//! - A plugin lease (`project:<id>/res:<name>`) is taken by a plugin, which
//!   is told at once that it is held and decides itself what to do (this
//!   one failed its step); the host does not wait for it, and it is renewed
//!   only if the plugin holding it renews it.
//!
//! Every name in the message comes from the lock table, which plugins and
//! other sessions write: it is printed through [`crate::visible`].

use crate::locks::{format_ms, LockConflict};
use crate::visible::line;

/// The kinds of lock, told apart by their resource name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockKind {
    /// `plan:<id>`: a plan being worked on.
    Plan,
    /// `project:<id>`: the project's file tree, during Apply or Revert.
    Project,
    /// `project:<id>/res:<name>`: a lease a plugin took, with its name.
    Plugin(String),
    /// Anything else (a lock from a newer version, say).
    Other,
}

impl LockKind {
    /// The kind of the lock on `resource`.
    pub fn of(resource: &str) -> Self {
        if resource.starts_with("plan:") {
            return Self::Plan;
        }
        if let Some(rest) = resource.strip_prefix("project:") {
            return match rest.split_once("/res:") {
                Some((_, name)) => Self::Plugin(name.to_owned()),
                None if !rest.contains('/') => Self::Project,
                None => Self::Other,
            };
        }
        Self::Other
    }
}

/// The text printed (on stderr, after `error: `) for a conflict on `c`.
pub fn conflict_message(c: &LockConflict) -> String {
    let resource = line(&c.resource);
    let holder = format!(
        "  owner:     {}\n  holder:    {}\n  operation: {}\n  since:     {}\n",
        line(&c.owner),
        line(&c.holder.to_string()),
        line(&c.operation),
        format_ms(c.acquired_at),
    );
    let until = format_ms(c.expires_at);
    let release = format!(
        "If the holder is gone for good, release the lock (its holder will be fenced out):\n  lockstep locks release {resource} --force"
    );
    match LockKind::of(&c.resource) {
        LockKind::Plugin(name) => format!(
            "the plugin's lease `{name}` (`{resource}`) is held by another session.\n{holder}  until:     {until} (unless its holder renews it)\n\
             The plugin asked for this lease, was told it is held, and decided how to react: it failed the step. \
             The host does not wait for plugin leases, so --lock-timeout does not help.\n\
             Wait until the lease is released or expires ({until}), then run the phase again with `lockstep plan retry`.\n{release}",
            name = line(&name),
        ),
        kind => {
            let what = match kind {
                LockKind::Plan => "the plan is being worked on by another session",
                LockKind::Project => {
                    "the project's files are being changed (a plan is applied or reverted) by another session"
                }
                _ => "it is locked by another session",
            };
            format!(
                "`{resource}` is locked: {what}.\n{holder}  until:     {until} (renewed while the holder is alive)\n\
                 Wait for it to finish, or retry with --lock-timeout 5m to wait for it.\n{release}"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::Holder;

    fn conflict(resource: &str) -> LockConflict {
        LockConflict {
            resource: resource.into(),
            owner: "session-1".into(),
            operation: "execute plan abc".into(),
            holder: Holder {
                host: "box".into(),
                pid: 42,
                user: "ann".into(),
            },
            acquired_at: 0,
            expires_at: 60_000,
        }
    }

    #[test]
    fn a_plugin_lease_conflict_does_not_promise_that_lock_timeout_waits() {
        let text = conflict_message(&conflict("project:p1/res:db"));
        assert!(
            text.starts_with("the plugin's lease `db` (`project:p1/res:db`) is held"),
            "{text}"
        );
        assert!(text.contains("ann@box pid 42"), "{text}");
        assert!(
            text.contains("until:     1970-01-01T00:01:00Z (unless its holder renews it)"),
            "{text}"
        );
        assert!(text.contains("decided how to react"), "{text}");
        assert!(text.contains("--lock-timeout does not help"), "{text}");
        assert!(!text.contains("retry with --lock-timeout"), "{text}");
        assert!(
            !text.contains("renewed while the holder is alive"),
            "{text}"
        );
        assert!(
            text.contains("lockstep locks release project:p1/res:db --force"),
            "{text}"
        );
    }

    #[test]
    fn a_plan_lock_conflict_suggests_waiting_with_lock_timeout() {
        let text = conflict_message(&conflict("plan:abc"));
        assert!(
            text.starts_with("`plan:abc` is locked: the plan is being worked on"),
            "{text}"
        );
        assert!(text.contains("retry with --lock-timeout 5m"), "{text}");
        assert!(text.contains("renewed while the holder is alive"), "{text}");
        assert!(text.contains("lockstep locks release plan:abc --force"));
    }

    #[test]
    fn a_project_lock_conflict_says_the_files_are_being_changed() {
        let text = conflict_message(&conflict("project:p1"));
        assert!(
            text.starts_with("`project:p1` is locked: the project's files are being changed"),
            "{text}"
        );
        assert!(text.contains("retry with --lock-timeout 5m"), "{text}");
        assert!(text.contains("lockstep locks release project:p1 --force"));
    }

    #[test]
    fn lock_names_are_told_apart_by_their_form() {
        assert_eq!(LockKind::of("plan:x"), LockKind::Plan);
        assert_eq!(LockKind::of("project:x"), LockKind::Project);
        assert_eq!(
            LockKind::of("project:x/res:a/b"),
            LockKind::Plugin("a/b".into())
        );
        assert_eq!(LockKind::of("other"), LockKind::Other);
    }

    #[test]
    fn a_lease_name_with_escape_sequences_is_shown_not_sent() {
        let text = conflict_message(&conflict("project:p/res:\u{1b}[2Jx"));
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }
}
