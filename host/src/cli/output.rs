//! Rendering: errors (with exit codes), diffs, tables.
//!
//! Every string a plugin, an action file or a project controls is printed
//! through [`crate::visible`]: control characters, escape sequences and
//! invisible format characters are shown, not sent, so the only escape
//! sequences that reach the terminal are lockstep's own colours
//! ([`paint`], [`callouts`]). JSON goes through [`crate::visible::json`].

use std::io::IsTerminal;

use serde_json::json;

use super::error::CliError;
use crate::authoring::HarnessError;
use crate::lifecycle::{LifecycleError, PluginError};
use crate::locks::format_ms;
use crate::model::{ChangeKind, ChangeRecord};
use crate::visible;
use crate::workspace::change_diff;

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

/// The exit code for an error.
pub fn exit_code(e: &CliError) -> u8 {
    if let CliError::Reported(r) = e {
        return r.code;
    }
    if e.conflict().is_some() {
        return EXIT_LOCK_CONFLICT;
    }
    match e.lifecycle() {
        Some(LifecycleError::InvalidTransition(_)) => EXIT_INVALID_TRANSITION,
        Some(LifecycleError::ApplyDrift(_)) => EXIT_APPLY_DRIFT,
        _ => EXIT_FAILURE,
    }
}

/// Print an error: JSON on stdout with `--json`, else a message on stderr
/// that says what happened and what to do next (a plugin's raw trap and
/// wasm backtrace only when `verbose`).
pub fn print_error(e: &CliError, as_json: bool, verbose: bool) {
    match (e, e.conflict()) {
        (CliError::Reported(_), _) if as_json => {}
        (CliError::Reported(r), _) => eprintln!("error: {}", visible::block(&r.message)),
        _ if as_json => println!("{}", visible::json(&json!({ "error": error_json(e) }))),
        (_, Some(c)) => eprintln!("error: {}", super::conflict::conflict_message(c)),
        _ => {
            let text = match verbose {
                true => message(e),
                false => without_backtrace(e, message(e)),
            };
            eprintln!("error: {}", visible::block(&text));
            if let Some(hint) = hint(e) {
                eprintln!("{hint}");
            }
        }
    }
}

/// The error as the value of `error` in the JSON printed with `--json`:
/// a lock conflict with its holder, else the kind and the message, and
/// what the kind carries (the drifted files, the plan's status now).
pub fn error_json(e: &CliError) -> serde_json::Value {
    if let Some(c) = e.conflict() {
        return json!({
            "kind": "lock_conflict",
            "resource": c.resource,
            "owner": c.owner,
            "operation": c.operation,
            "holder": c.holder,
            "acquired_at": format_ms(c.acquired_at),
            "expires_at": format_ms(c.expires_at),
            "acquired_at_ms": c.acquired_at,
            "expires_at_ms": c.expires_at,
        });
    }
    let mut body = json!({ "kind": kind(e), "message": message(e) });
    match e.lifecycle() {
        Some(LifecycleError::ApplyDrift(d)) => body["files"] = json!(d),
        Some(LifecycleError::LeaseLost { current, .. }) => {
            body["status"] = json!(current.to_string())
        }
        _ => {}
    }
    body
}

/// The error `e` wraps, where its causes start: the lifecycle error of a
/// plan command or of `plugin test` (a harness error forwards its source
/// past it), the error of a plugin command, else `e` itself.
fn innermost(e: &CliError) -> &(dyn std::error::Error + 'static) {
    match e {
        CliError::Lifecycle { source, .. } => source,
        CliError::Harness(HarnessError::Plan(l)) => l,
        CliError::Harness(h) => h,
        CliError::Plugins(p) => p.as_ref(),
        other => other,
    }
}

/// `e`'s causes from [`innermost`] on.
fn causes(e: &CliError) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(Some(innermost(e)), |c| c.source())
}

/// The `kind` of an error in its JSON form, from the first lifecycle
/// error among its causes.
fn kind(e: &CliError) -> &'static str {
    match causes(e).find_map(|c| c.downcast_ref::<LifecycleError>()) {
        Some(LifecycleError::InvalidTransition(_)) => "invalid_transition",
        Some(LifecycleError::ApplyDrift(_)) => "apply_drift",
        Some(LifecycleError::NotFound(_)) => "not_found",
        Some(LifecycleError::Plugin { .. }) => "plugin",
        Some(LifecycleError::LockExpired { .. }) => "lock_expired",
        Some(LifecycleError::LeaseLost { .. }) => "lease_lost",
        Some(LifecycleError::InvalidAction(_)) => "invalid_action",
        Some(LifecycleError::InvalidChange(_)) => "invalid_change",
        _ => "error",
    }
}

/// What to do next, printed under the error (without `--json`): only for
/// the error of a plan command (not one of `plugin test`, whose scratch
/// plan is gone).
fn hint(e: &CliError) -> Option<String> {
    let id = e
        .plan()
        .map_or("ID (`lockstep plan list` shows it)", |id| id);
    Some(match e.lifecycle()? {
        LifecycleError::ApplyDrift(_) => format!(
            "Nothing was written. Run `lockstep plan revert {id}` and run the plan again."
        ),
        // The same input would be refused again: no retry.
        LifecycleError::Plugin {
            source: PluginError::InvalidInput(_),
            ..
        } => "The plugin refused the action's input; nothing was changed. Fix the params in the action file and create a new plan from it.".to_string(),
        LifecycleError::Plugin { .. } | LifecycleError::LockExpired { .. } => {
            format!("The plan is errored; `lockstep plan retry {id}` runs the phase again.")
        }
        LifecycleError::LeaseLost { .. } => format!(
            "Another session carried the plan on and this session's result was not recorded; `lockstep plan status {id}` shows the plan and its history."
        ),
        LifecycleError::InvalidChange(_) => format!(
            "Nothing was stored. The plan is errored; fix the plugin or the action, then `lockstep plan retry {id}`."
        ),
        _ => return None,
    })
}

/// The error and its causes, each cause once: library errors often repeat
/// their source in their own message (`execute failed: {0}`), and a cause
/// whose text is already there adds nothing.
pub fn message(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// `text` (the message of `e`) with the raw part of a plugin trap — the
/// trap itself and the wasm backtrace, which say little to a plugin author
/// next to the trap's message — replaced by one line saying how to see it.
pub fn without_backtrace(e: &CliError, text: String) -> String {
    let trap = causes(e).find_map(|c| match c.downcast_ref::<PluginError>() {
        Some(PluginError::Trap { backtrace, .. }) => Some(backtrace),
        _ => None,
    });
    let Some(backtrace) = trap else {
        return text;
    };
    let (place, raw) = backtrace.split_once('\n').unwrap_or((backtrace, ""));
    if raw.is_empty() {
        return text;
    }
    let frames = raw
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            let digits = l.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && l[digits..].starts_with(": ")
        })
        .count();
    let place = place.trim_end_matches(':');
    let hidden = format!(
        "{place}: --verbose shows the trap and its wasm backtrace ({frames} frame{})",
        if frames == 1 { "" } else { "s" }
    );
    text.replacen(backtrace.as_str(), &hidden, 1)
}

/// Whether to colour output on stdout.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A changeset that deletes at least this many files is called out before
/// the confirmation prompt.
pub const MANY_DELETES: usize = 10;

/// What a reviewer must not miss in a changeset, one line each: every write
/// that empties a non-empty file, and deleting [`MANY_DELETES`] files or
/// more. Printed after the diff, right before the confirmation prompt.
pub fn callouts(changes: &[ChangeRecord], colour: bool) -> String {
    let mut lines = Vec::new();
    for c in changes {
        let base = c.base_contents.as_deref().unwrap_or_default();
        let emptied = c.kind == ChangeKind::Write
            && c.contents.as_deref().unwrap_or_default().is_empty()
            && !base.is_empty();
        if emptied {
            lines.push(format!(
                "warning: `{}` will be emptied ({} bytes → 0 bytes)",
                visible::line(&c.path),
                base.len()
            ));
        }
    }
    let deletes = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Delete)
        .count();
    if deletes >= MANY_DELETES {
        lines.push(format!(
            "warning: this changeset deletes {deletes} files (of {} changes)",
            changes.len()
        ));
    }
    let mut out = String::new();
    for l in lines {
        if colour {
            out.push_str(&format!("\x1b[33m{l}\x1b[0m\n"));
        } else {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// A unified diff of a changeset, base → new, safe to print (see
/// [`crate::workspace::unified_diff`]): each file's [`change_diff`] as text.
pub fn diff(changes: &[ChangeRecord], colour: bool) -> String {
    let mut out = String::new();
    for c in changes {
        out.push_str(&paint(&change_diff(c).to_text(), colour));
    }
    out
}

/// `diff` with added lines green, removed ones red and hunk headers cyan.
/// `diff` must already be safe to print ([`crate::workspace::unified_diff`] output): these
/// colours are the only escape sequences added.
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

    fn delete(path: &str) -> ChangeRecord {
        ChangeRecord {
            path: path.into(),
            kind: ChangeKind::Delete,
            contents: None,
            base_contents: Some(b"gone\n".to_vec()),
            base_hash: Some("h".into()),
            new_hash: None,
        }
    }

    /// Escape sequences other than `ESC [ digits/; m` (lockstep's colours).
    fn foreign_escapes(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (i, _) in text.match_indices('\x1b') {
            let rest = &text[i + 1..];
            let sgr = rest.strip_prefix('[').is_some_and(|r| {
                let params = r.bytes().take_while(|b| b.is_ascii_digit() || *b == b';');
                r.as_bytes().get(params.count()) == Some(&b'm')
            });
            if !sgr {
                found.push(rest.chars().take(8).collect());
            }
        }
        found
    }

    #[test]
    fn a_crlf_to_lf_change_is_visible_in_the_diff() {
        let d = diff(
            &[ChangeRecord::test_write(
                "w.txt",
                Some(b"one\r\ntwo\r\n"),
                b"one\ntwo\n",
            )],
            false,
        );
        assert!(d.contains("line endings only: CRLF → LF"), "{d}");
        assert!(
            d.contains("-one␍\n-two␍\n+one\n+two\n"),
            "the removed lines are not identical to the added ones: {d}"
        );
    }

    #[test]
    fn an_emptied_file_is_called_out() {
        let changes = [
            ChangeRecord::test_write("config.toml", Some(b"key = 1\n"), b""),
            ChangeRecord::test_write("new.txt", None, b""),
            ChangeRecord::test_write("kept.txt", Some(b"a\n"), b"b\n"),
        ];
        let text = callouts(&changes, false);
        assert_eq!(
            text, "warning: `config.toml` will be emptied (8 bytes → 0 bytes)\n",
            "only the emptied file, not a new empty one"
        );
        let many: Vec<_> = (0..MANY_DELETES)
            .map(|i| delete(&format!("f{i}")))
            .collect();
        let text = callouts(&many, false);
        assert_eq!(
            text,
            format!("warning: this changeset deletes {MANY_DELETES} files (of {MANY_DELETES} changes)\n")
        );
        assert_eq!(callouts(&many[1..], false), "", "below the threshold");
        let painted = callouts(&changes, true);
        assert!(
            painted.starts_with("\x1b[33mwarning: `config.toml`"),
            "{painted:?}"
        );
        let hostile = [ChangeRecord::test_write("a\x1b[2K", Some(b"x"), b"")];
        assert!(foreign_escapes(&callouts(&hostile, true)).is_empty());
    }

    #[test]
    fn binary_files_are_shown_by_size() {
        let d = diff(
            &[ChangeRecord::test_write(
                "logo.png",
                Some(b"\x89PNG\x00\x1b[2K"),
                b"\x89PNG\x00\x00\x01\x1b[1A\x07",
            )],
            false,
        );
        assert_eq!(
            d,
            "--- a/logo.png\n+++ b/logo.png\nbinary, 9 bytes → 12 bytes\n"
        );
    }

    #[test]
    fn only_lockstep_colours_reach_the_terminal_with_colour_on() {
        let tricks = "\x1b[1A\x1b[2K\x1b]0;owned\x07\x1b[31m\u{9b}2K\r\n";
        let d = diff(
            &[ChangeRecord::test_write(
                "a\x1b[1A.txt",
                Some(b"keep\n"),
                format!("keep\n{tricks}").as_bytes(),
            )],
            true,
        );
        assert!(foreign_escapes(&d).is_empty(), "{d:?}");
        assert!(
            !d.contains('\u{9b}') && !d.contains('\r') && !d.contains('\x07'),
            "{d:?}"
        );
        assert!(
            d.contains("\x1b[32m+␛[1A␛[2K␛]0;owned␇␛[31m\\u{9b}2K␍\x1b[0m"),
            "{d:?}"
        );
        assert_eq!(
            foreign_escapes("\x1b[32mok\x1b[0m\x1b[1;33m"),
            Vec::<String>::new()
        );
        assert_eq!(foreign_escapes("\x1b[2K"), vec!["[2K".to_string()]);
    }

    #[test]
    fn error_messages_keep_lines_and_show_controls() {
        let e = CliError::Create {
            path: "execute failed".into(),
            source: std::io::Error::other("plugin said: \x1b[2Kok\r"),
        };
        assert_eq!(
            visible::block(&message(&e)),
            "cannot create `execute failed`: plugin said: ␛[2Kok␍"
        );
    }

    #[test]
    fn a_trap_shows_its_backtrace_only_when_verbose() {
        let backtrace = "in plugin `p` (p.wasm):\nwasm trap: wasm `unreachable` instruction executed\n\
                         error while executing at wasm backtrace:\n    0: 0x1 - <unknown>!<wasm function 1>\n\
                         \x20   1: 0x2 - <unknown>!lockstep:plugin/execution@0.2.0#execute";
        let e = CliError::from(LifecycleError::Plugin {
            phase: crate::model::Phase::Execute,
            source: PluginError::Trap {
                plugin: "p".into(),
                message: "`execute` (step `s`) threw Error: boom".into(),
                backtrace: backtrace.into(),
            },
        });
        let full = message(&e);
        assert!(full.contains("<wasm function 1>"), "{full}");
        assert_eq!(
            without_backtrace(&e, full),
            "execute failed: plugin `p` trapped: `execute` (step `s`) threw Error: boom\n\
             in plugin `p` (p.wasm): --verbose shows the trap and its wasm backtrace (2 frames)"
        );
        let other = CliError::from(anyhow::anyhow!("no trap"));
        assert_eq!(without_backtrace(&other, message(&other)), "no trap");
    }

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let e = CliError::from(LifecycleError::InvalidChange(ChangeError::TooMany {
            limit: 3,
        }));
        let text = message(&e);
        assert_eq!(text.matches("more than 3 files").count(), 1, "{text}");
        let e = CliError::Create {
            path: "a.toml".into(),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(message(&e), "cannot create `a.toml`: disk full");
    }
}
