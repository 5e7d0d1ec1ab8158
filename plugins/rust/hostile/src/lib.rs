//! `hostile`: a sandbox test fixture that misbehaves on purpose.
//!
//! The `mode` param picks the misbehaviour. Every other action param is
//! passed on to the steps.
//!
//! State:
//! - `count`: reports `call N`, N counting the calls this instance served
//!   (1 on every call unless the host keeps the instance between calls).
//!
//! Runaway code:
//! - `loop`: spins forever (the host must time it out).
//! - `memory`: allocates and touches 16 MiB blocks forever, keeping them all
//!   (the host must stop it at its memory limit).
//! - `trap`: panics, which traps the instance.
//! - `deep-recursion`: recurses without end until the stack overflows.
//!
//! Escapes and odd paths (the host must refuse the change):
//! - `read-outside`: reads `../outside.txt` and `/etc/passwd`, and reports
//!   both results (which must be denials) in its summary.
//! - `write-dotdot`, `write-symlink`, `write-lockstep`: return a change
//!   writing `../escaped.txt`, `link/escaped.txt` (tests make `link` a symlink
//!   out of the project) or `.lockstep/evil`.
//! - `write-nul`: writes `bad\0name.txt`.
//! - `write-long-name`: writes a file whose name is 5000 bytes long.
//! - `write-case-collision`: writes both `A.txt` and `a.txt`.
//! - `write-nfc-nfd`: writes `café.txt` twice, once with a precomposed `é`
//!   (NFC) and once as `e` + combining acute accent (NFD).
//! - `file-and-child`: writes both `a` and `a/b` (one name would have to be
//!   a file and a directory at once).
//! - `nested-git-write`: writes `vendor/x/.git/config` (a vendored
//!   repository's VCS directory).
//!
//! Huge outputs:
//! - `many-changes`: returns `count` (default 100 000) small writes to
//!   `many/<n>.txt` in one step.
//! - `giant-file`: returns one write of `mb` (default 64) MiB to `giant.bin`.
//! - `alias`: returns `count` (default 1000) writes whose contents all point
//!   at one buffer of `mb` (default 1) MiB, so that a small plugin asks the
//!   host to copy `count` × `mb` MiB.
//! - `huge-log`: logs 100 000 lines of 1 KiB each, then succeeds.
//!
//! Terminal tricks (the host must show them, not send them):
//! - `escape-sequences`: the proposal summary, the step title, the step
//!   summary, a warning log line, a progress message and the contents it
//!   writes carry ANSI escape sequences (cursor up, erase line, colours, an
//!   OSC title), carriage returns and bidi overrides. It appends a line to
//!   `README.md` that erases the line above it, rewrites `src/lib.rs` with
//!   CRLF line endings, and writes `notes.txt` with trailing whitespace.
//!
//! Reads:
//! - `read-file`: reads `path` and reports `read <n> bytes` or
//!   `error <fs-error>` in its summary.
//!
//! Leases (each reports what happened in its summary):
//! - `lease-flood`: acquires `count` (default 100 000) leases on distinct
//!   names and never drops a handle.
//! - `handle-flood`: acquires and releases `count` (default 100 000) leases
//!   on distinct names, never dropping a released handle.
//! - `double-release`: releases one lease twice.
//! - `use-after-release`: releases a lease, then asks its name and token and
//!   renews it.
//! - `keep-lease`: acquires `kept` and leaks the handle, so that the lease
//!   is still held when the call returns.
//! - `reacquire`: acquires `marker`, waits `wait_ms` (default 1500), then
//!   acquires `kept` and reports its token.
//!
//! Plugin text and host calls (`floods.rs`):
//! - `stdout-newline-flood`: one `wasi:cli/stdout` `write` of `mb` (default
//!   8) MiB of newlines, ignoring the `check-write` permit; with
//!   `chunked = "true"`, as many writes as the permit asks for.
//! - `log-control-flood`: one `log` line of `mb` (default 100) MiB of
//!   `\x01`.
//! - `huge-summaries`: the strategist proposes `steps` (default 10 000)
//!   steps, each returning a summary of `bytes` (default 1 MiB).
//! - `huge-title`: the strategist proposes one step whose title is `bytes`
//!   (default 1 MiB) long.
//! - `random-bytes-flood`: one `get-random-bytes` of `bytes` (default
//!   64 MiB).
//! - `resource-table-flood`: `count` (default 1 000 000) `get-stdout`
//!   handles, none dropped.
//!
//! Normally the strategist proposes one step `h` carrying the mode and the
//! executor misbehaves. A comma-separated `mode` (`keep-lease,reacquire`)
//! proposes one step per mode, `h1`, `h2`, … A mode written as
//! `strategize-<mode>` (e.g. `strategize-loop`, `strategize-trap`)
//! misbehaves in the strategist instead.

wit_bindgen::generate!({
    path: ["../../../wit/v0.2.0", "wit"],
    world: "lockstep:hostile/hostile",
    generate_all,
});

mod floods;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use exports::lockstep::plugin::{execution, strategy};
use lockstep::plugin::locks;
use lockstep::plugin::log::{log, Level};
use lockstep::plugin::progress;
use lockstep::plugin::types::{
    Action, Change, FileWrite, LockError, Param, PlanProposal, PluginError, Step, StepOutcome,
};
use lockstep::plugin::workspace;

/// The plugin; it has no state between calls.
struct Hostile;

export!(Hostile);

/// How long leases are requested for.
const TTL_MS: u64 = 30_000;

/// The value of parameter `key`, if present.
fn param<'a>(params: &'a [Param], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The `mode` param, which must be present.
fn mode(params: &[Param]) -> Result<&str, PluginError> {
    param(params, "mode")
        .ok_or_else(|| PluginError::InvalidInput("param `mode` is required".into()))
}

/// A whole-number param with a default.
fn number(params: &[Param], key: &str, default: u64) -> Result<u64, PluginError> {
    match param(params, key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            PluginError::InvalidInput(format!("param `{key}` must be a whole number, not {v:?}"))
        }),
    }
}

/// An outcome that writes each of `paths` with a short text.
fn write(paths: &[&str]) -> StepOutcome {
    StepOutcome {
        changes: paths
            .iter()
            .map(|path| {
                Change::Write(FileWrite {
                    path: (*path).into(),
                    contents: b"escaped\n".to_vec(),
                })
            })
            .collect(),
        // Not the paths themselves: a 5000-byte name would put the summary
        // over the host's summary cap before the path is checked.
        summary: format!("wrote {} file(s)", paths.len()),
    }
}

/// An outcome with no changes.
fn report(summary: String) -> StepOutcome {
    StepOutcome {
        changes: Vec::new(),
        summary,
    }
}

/// Text that would rewrite a terminal if printed raw: cursor up and erase
/// line, a colour, an OSC window title, a carriage return and a
/// right-to-left override.
const TRICKS: &str = "\u{1b}[1A\u{1b}[2K\u{1b}[32mall good\u{1b}[0m\u{1b}]0;owned\u{7}\rfake\u{202e}txt.exe";

/// The `escape-sequences` step: every string it returns or reports, and the
/// contents it writes, carry [`TRICKS`].
fn escape_sequences() -> Result<StepOutcome, PluginError> {
    log(Level::Warn, &format!("log {TRICKS}"));
    progress::report(1, 2, &format!("progress {TRICKS}"));
    let readme = workspace::read("README.md")
        .map_err(|e| PluginError::Permanent(format!("reading README.md: {e:?}")))?;
    let lib = workspace::read("src/lib.rs")
        .map_err(|e| PluginError::Permanent(format!("reading src/lib.rs: {e:?}")))?;
    let mut appended = readme;
    appended.extend_from_slice(format!("harmless\n{TRICKS}\n").as_bytes());
    let crlf = String::from_utf8_lossy(&lib).replace('\n', "\r\n");
    Ok(StepOutcome {
        changes: vec![
            Change::Write(FileWrite {
                path: "README.md".into(),
                contents: appended,
            }),
            Change::Write(FileWrite {
                path: "src/lib.rs".into(),
                contents: crlf.into_bytes(),
            }),
            Change::Write(FileWrite {
                path: "notes.txt".into(),
                contents: b"trailing \t\n".to_vec(),
            }),
        ],
        summary: format!("summary {TRICKS}"),
    })
}

/// Spins forever in a way the optimiser cannot remove.
fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates, touches and keeps 16 MiB blocks until the instance dies.
fn hoard() -> ! {
    const BLOCK: usize = 16 << 20;
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; BLOCK];
        for byte in block.iter_mut().step_by(4096) {
            *byte = 1;
        }
        kept.push(black_box(block));
        black_box(&kept);
    }
}

/// Recurses until the stack runs out; the result is used so that the call
/// is not a tail call, and the depth test is opaque so it never stops.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return depth;
    }
    let frame = black_box([depth; 8]);
    recurse(black_box(depth + 1)).wrapping_add(frame[black_box(3)])
}

/// `many-changes`: `count` small writes in one outcome.
fn many_changes(count: u64) -> StepOutcome {
    StepOutcome {
        changes: (0..count)
            .map(|i| {
                Change::Write(FileWrite {
                    path: format!("many/{i}.txt"),
                    contents: b"x\n".to_vec(),
                })
            })
            .collect(),
        summary: format!("wrote {count} files"),
    }
}

/// `giant-file`: one write of `mb` MiB of non-zero bytes (so every page is
/// really touched).
fn giant_file(mb: u64) -> StepOutcome {
    let len = usize::try_from(mb << 20).unwrap_or(usize::MAX);
    StepOutcome {
        changes: vec![Change::Write(FileWrite {
            path: "giant.bin".into(),
            contents: vec![b'g'; len],
        })],
        summary: format!("wrote {mb} MiB"),
    }
}

/// `alias`: `count` writes sharing one `mb` MiB buffer. Safe Rust cannot
/// express this (each `Vec` claims to own the buffer), but the canonical ABI
/// allows it and a component written by hand does it for free. The buffer
/// is never freed: the result either fails to cross or the instance ends.
fn alias(count: u64, mb: u64) -> StepOutcome {
    let len = usize::try_from(mb << 20).unwrap_or(usize::MAX);
    let mut buffer = std::mem::ManuallyDrop::new(vec![b'a'; len]);
    let ptr = buffer.as_mut_ptr();
    StepOutcome {
        changes: (0..count)
            .map(|i| {
                Change::Write(FileWrite {
                    path: format!("alias/{i}.bin"),
                    // SAFETY: deliberately not: every write claims the same
                    // buffer. Nothing in this instance reads or frees it
                    // again; the host copies (or refuses) each one.
                    contents: unsafe { Vec::from_raw_parts(ptr, len, len) },
                })
            })
            .collect(),
        summary: format!("wrote {count} aliases of {mb} MiB"),
    }
}

/// Counts successes and refusals of `attempt` run `count` times, keeping
/// whatever each success returns and never dropping it (the host must clean
/// up when the call ends); reports the first refusal.
fn flood<T>(count: u64, mut attempt: impl FnMut(u64) -> Result<T, LockError>) -> String {
    let mut kept = Vec::new();
    let mut refused = 0u64;
    let mut first = None;
    for i in 0..count {
        match attempt(i) {
            Ok(v) => kept.push(v),
            Err(e) => {
                refused += 1;
                first.get_or_insert(e);
            }
        }
    }
    let summary = format!("ok {} refused {refused} first {first:?}", kept.len());
    std::mem::forget(kept);
    summary
}

/// Calls this instance has served (`count` mode shows whether the host kept
/// the instance between calls).
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Misbehaves as `mode` says. Modes that end the instance never return.
fn misbehave(mode: &str, params: &[Param]) -> Result<StepOutcome, PluginError> {
    match mode {
        "count" => Ok(report(format!(
            "call {}",
            CALLS.fetch_add(1, Ordering::Relaxed) + 1
        ))),
        "loop" => spin(),
        "memory" => hoard(),
        "trap" => panic!("hostile plugin panicked on purpose"),
        "deep-recursion" => Ok(report(format!("returned {}", recurse(0)))),
        "read-outside" => {
            let outside = workspace::read("../outside.txt");
            let absolute = workspace::read("/etc/passwd");
            Ok(report(format!(
                "outside: {outside:?}; absolute: {absolute:?}"
            )))
        }
        "write-dotdot" => Ok(write(&["../escaped.txt"])),
        "write-symlink" => Ok(write(&["link/escaped.txt"])),
        "write-lockstep" => Ok(write(&[".lockstep/evil"])),
        "write-nul" => Ok(write(&["bad\0name.txt"])),
        "write-long-name" => Ok(write(&[&"n".repeat(5000)])),
        "write-case-collision" => Ok(write(&["A.txt", "a.txt"])),
        "write-nfc-nfd" => Ok(write(&["caf\u{e9}.txt", "cafe\u{301}.txt"])),
        "file-and-child" => Ok(write(&["a", "a/b"])),
        "nested-git-write" => Ok(write(&["vendor/x/.git/config"])),
        "many-changes" => Ok(many_changes(number(params, "count", 100_000)?)),
        "giant-file" => Ok(giant_file(number(params, "mb", 64)?)),
        "alias" => Ok(alias(
            number(params, "count", 1000)?,
            number(params, "mb", 1)?,
        )),
        "huge-log" => {
            let line = "x".repeat(1024);
            for _ in 0..100_000 {
                log(Level::Info, &line);
            }
            Ok(report("logged 100000 lines of 1 KiB".into()))
        }
        "escape-sequences" => escape_sequences(),
        "read-file" => {
            let path = param(params, "path")
                .ok_or_else(|| PluginError::InvalidInput("param `path` is required".into()))?;
            Ok(report(match workspace::read(path) {
                Ok(bytes) => format!("read {} bytes", bytes.len()),
                Err(e) => format!("error {e:?}"),
            }))
        }
        "lease-flood" => {
            let count = number(params, "count", 100_000)?;
            Ok(report(flood(count, |i| {
                locks::acquire(&format!("flood-{i}"), TTL_MS)
            })))
        }
        "handle-flood" => {
            let count = number(params, "count", 100_000)?;
            Ok(report(flood(count, |i| {
                let lease = locks::acquire(&format!("handle-{i}"), TTL_MS)?;
                lease.release()?;
                Ok(lease)
            })))
        }
        "double-release" => {
            let lease = locks::acquire("double", TTL_MS).map_err(PluginError::Lock)?;
            let first = lease.release();
            let second = lease.release();
            Ok(report(format!("first {first:?} second {second:?}")))
        }
        "use-after-release" => {
            let lease = locks::acquire("used", TTL_MS).map_err(PluginError::Lock)?;
            let token = lease.token();
            let released = lease.release();
            let renew = lease.renew(TTL_MS);
            Ok(report(format!(
                "token {token} released {released:?} name {} token-after {} renew {renew:?}",
                lease.name(),
                lease.token()
            )))
        }
        "keep-lease" => {
            let lease = locks::acquire("kept", TTL_MS).map_err(PluginError::Lock)?;
            let summary = format!("kept token {}", lease.token());
            // Never dropped: the host must release it when the call ends.
            std::mem::forget(lease);
            Ok(report(summary))
        }
        "reacquire" => {
            let marker = locks::acquire("marker", TTL_MS).map_err(PluginError::Lock)?;
            std::thread::sleep(Duration::from_millis(number(params, "wait_ms", 1500)?));
            let kept = locks::acquire("kept", TTL_MS).map_err(PluginError::Lock)?;
            let summary = format!("reacquired token {}", kept.token());
            drop((kept, marker));
            Ok(report(summary))
        }
        "stdout-newline-flood" => Ok(report(floods::stdout_newlines(
            number(params, "mb", 8)?,
            param(params, "chunked") == Some("true"),
        ))),
        "log-control-flood" => Ok(report(floods::log_control(number(params, "mb", 100)?))),
        "huge-summaries" => Ok(report(floods::summary(number(params, "bytes", 1 << 20)?))),
        "random-bytes-flood" => Ok(report(floods::random(number(params, "bytes", 64 << 20)?))),
        "resource-table-flood" => Ok(report(floods::handles(number(params, "count", 1_000_000)?))),
        other => Err(PluginError::InvalidInput(format!("unknown mode {other:?}"))),
    }
}

/// A step running `mode` with the action's other params.
fn step(id: String, mode: &str, params: &[Param]) -> Step {
    let mut step_params: Vec<Param> = params
        .iter()
        .filter(|(k, _)| k != "mode")
        .cloned()
        .collect();
    step_params.push(("mode".into(), mode.into()));
    let title = match mode {
        "escape-sequences" => format!("title {TRICKS}"),
        _ => format!("Misbehave: {mode}"),
    };
    Step {
        id,
        title,
        params: step_params,
        targets: Vec::new(),
    }
}

impl strategy::Guest for Hostile {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let mode = mode(&action.params)?;
        if let Some(inner) = mode.strip_prefix("strategize-") {
            // A strategist cannot return changes: only the summary survives.
            let outcome = misbehave(inner, &action.params)?;
            return Ok(PlanProposal {
                summary: outcome.summary,
                steps: Vec::new(),
            });
        }
        if let Some(proposal) = floods::proposal(mode, &action.params)? {
            return Ok(proposal);
        }
        let modes: Vec<&str> = mode.split(',').map(str::trim).collect();
        let steps = if modes.len() == 1 {
            vec![step("h".into(), mode, &action.params)]
        } else {
            modes
                .iter()
                .enumerate()
                .map(|(i, m)| step(format!("h{}", i + 1), m, &action.params))
                .collect()
        };
        let summary = match mode {
            "escape-sequences" => format!("proposal {TRICKS}"),
            _ => format!("Misbehave: {mode}"),
        };
        Ok(PlanProposal { summary, steps })
    }
}

impl execution::Guest for Hostile {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        misbehave(mode(&step.params)?, &step.params)
    }
}
