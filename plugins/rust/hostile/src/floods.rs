//! Modes that flood the host with plugin text or through host calls: raw
//! stdout writes, control characters in a log line, huge summaries and
//! titles, random bytes, resource handles.

use crate::lockstep::plugin::log::{log, Level};
use crate::lockstep::plugin::types::{Param, PlanProposal, PluginError};
use crate::wasi::cli::stdout::get_stdout;
use crate::wasi::random::random::get_random_bytes;
use crate::{number, step};

/// `stdout-newline-flood`: one `write` of `mb` MiB of newlines, without
/// asking `check-write` first; with `chunked`, the same amount in writes of
/// what `check-write` permits (each one allowed).
pub fn stdout_newlines(mb: u64, chunked: bool) -> String {
    let out = get_stdout();
    if chunked {
        let mut left = mb << 20;
        while left > 0 {
            let permit = out.check_write().unwrap_or(4096).clamp(1, left);
            let chunk = vec![b'\n'; permit as usize];
            if let Err(e) = out.write(&chunk) {
                return format!("write refused: {e:?}");
            }
            left -= permit;
        }
        return format!("wrote {mb} MiB of newlines in permitted writes");
    }
    let bytes = vec![b'\n'; (mb << 20) as usize];
    match out.write(&bytes) {
        Ok(()) => format!("wrote {mb} MiB of newlines in one write"),
        Err(e) => format!("write refused: {e:?}"),
    }
}

/// `log-control-flood`: one log line of `mb` MiB of `\x01`.
pub fn log_control(mb: u64) -> String {
    let line = "\u{1}".repeat((mb << 20) as usize);
    log(Level::Info, &line);
    format!("logged one line of {mb} MiB of \\x01")
}

/// `huge-summaries` (executor): a summary of `bytes` bytes.
pub fn summary(bytes: u64) -> String {
    "s".repeat(bytes as usize)
}

/// `random-bytes-flood`: one `get-random-bytes` of `bytes`.
pub fn random(bytes: u64) -> String {
    let got = get_random_bytes(bytes);
    format!("got {} random bytes", got.len())
}

/// `resource-table-flood`: `count` stdout handles, none dropped.
pub fn handles(count: u64) -> String {
    for _ in 0..count {
        std::mem::forget(get_stdout());
    }
    format!("held {count} stdout handles")
}

/// The strategist's proposal for the modes that misbehave in it, or `None`.
/// `huge-summaries` proposes `steps` steps (each returning a huge summary
/// when executed); `huge-title` proposes one step with a title of `bytes`.
pub fn proposal(mode: &str, params: &[Param]) -> Result<Option<PlanProposal>, PluginError> {
    match mode {
        "huge-summaries" => {
            let steps = number(params, "steps", 10_000)?;
            Ok(Some(PlanProposal {
                summary: format!("{steps} steps with huge summaries"),
                steps: (0..steps)
                    .map(|i| step(format!("h{i}"), mode, params))
                    .collect(),
            }))
        }
        "huge-title" => {
            let bytes = number(params, "bytes", 1 << 20)?;
            let mut one = step("h".into(), mode, params);
            one.title = "t".repeat(bytes as usize);
            Ok(Some(PlanProposal {
                summary: "one step with a huge title".into(),
                steps: vec![one],
            }))
        }
        _ => Ok(None),
    }
}
