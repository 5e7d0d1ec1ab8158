//! `hostile`: a sandbox test fixture that misbehaves on purpose.
//!
//! The `mode` param picks the misbehaviour:
//! - `loop`: spins forever (the host must time it out).
//! - `memory`: allocates and touches 16 MiB blocks forever, keeping them all
//!   (the host must stop it at its memory limit).
//! - `trap`: panics, which traps the instance.
//! - `read-outside`: reads `../outside.txt` and `/etc/passwd`, and reports
//!   both results (which must be denials) in its summary.
//! - `write-dotdot`, `write-symlink`, `write-lockstep`: return a change
//!   writing `../escaped.txt`, `link/escaped.txt` (tests make `link` a symlink
//!   out of the project) or `.lockstep/evil`, which the host must refuse.
//! - `huge-log`: logs 100 000 lines of 1 KiB each, then succeeds.
//!
//! Normally the strategist proposes the single step `h` carrying the mode
//! and the executor misbehaves. A mode written as `strategize-<mode>` (e.g.
//! `strategize-loop`, `strategize-trap`) misbehaves in the strategist instead.

wit_bindgen::generate!({
    path: "../../../wit/v0.2.0",
    world: "plugin",
});

use std::hint::black_box;

use exports::lockstep::plugin::{execution, strategy};
use lockstep::plugin::log::{log, Level};
use lockstep::plugin::types::{
    Action, Change, FileWrite, Param, PlanProposal, PluginError, Step, StepOutcome,
};
use lockstep::plugin::workspace;

/// The plugin; it has no state between calls.
struct Hostile;

export!(Hostile);

/// The `mode` param, which must be present.
fn mode(params: &[Param]) -> Result<&str, PluginError> {
    params
        .iter()
        .find(|(k, _)| k == "mode")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| PluginError::InvalidInput("param `mode` is required".into()))
}

/// An outcome that writes `path`.
fn write(path: &str) -> StepOutcome {
    StepOutcome {
        changes: vec![Change::Write(FileWrite {
            path: path.into(),
            contents: b"escaped\n".to_vec(),
        })],
        summary: format!("wrote {path}"),
    }
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

/// Misbehaves as `mode` says. Modes that end the instance never return.
fn misbehave(mode: &str) -> Result<StepOutcome, PluginError> {
    match mode {
        "loop" => spin(),
        "memory" => hoard(),
        "trap" => panic!("hostile plugin panicked on purpose"),
        "read-outside" => {
            let outside = workspace::read("../outside.txt");
            let absolute = workspace::read("/etc/passwd");
            Ok(StepOutcome {
                changes: Vec::new(),
                summary: format!("outside: {outside:?}; absolute: {absolute:?}"),
            })
        }
        "write-dotdot" => Ok(write("../escaped.txt")),
        "write-symlink" => Ok(write("link/escaped.txt")),
        "write-lockstep" => Ok(write(".lockstep/evil")),
        "huge-log" => {
            let line = "x".repeat(1024);
            for _ in 0..100_000 {
                log(Level::Info, &line);
            }
            Ok(StepOutcome {
                changes: Vec::new(),
                summary: "logged 100000 lines of 1 KiB".into(),
            })
        }
        other => Err(PluginError::InvalidInput(format!("unknown mode {other:?}"))),
    }
}

impl strategy::Guest for Hostile {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let mode = mode(&action.params)?;
        if let Some(inner) = mode.strip_prefix("strategize-") {
            // A strategist cannot return changes: only the summary survives.
            let outcome = misbehave(inner)?;
            return Ok(PlanProposal {
                summary: outcome.summary,
                steps: Vec::new(),
            });
        }
        Ok(PlanProposal {
            summary: format!("Misbehave: {mode}"),
            steps: vec![Step {
                id: "h".into(),
                title: format!("Misbehave: {mode}"),
                params: vec![("mode".into(), mode.into())],
                targets: Vec::new(),
            }],
        })
    }
}

impl execution::Guest for Hostile {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        misbehave(mode(&step.params)?)
    }
}
