//! `slow`: a test fixture whose steps take a known time.
//!
//! Action params:
//! - `steps` (default 1): how many steps to propose (`s1`, `s2`, ...).
//! - `ms` (default 1000): how long each step sleeps, in milliseconds.
//!
//! Each step sleeps (through WASI clocks) in four equal slices, reporting
//! progress through the `progress` import (`lockstep:plugin@0.2.0`) after
//! each, then writes `slow/<step-id>.txt` containing `done <step-id>\n`.

wit_bindgen::generate!({
    path: "../../../wit/v0.2.0",
    world: "plugin",
});

use std::time::Duration;

use exports::lockstep::plugin::{execution, strategy};
use lockstep::plugin::log::{log, Level};
use lockstep::plugin::progress::report;
use lockstep::plugin::types::{
    Action, Change, FileWrite, Param, PlanProposal, PluginError, Step, StepOutcome,
};

/// The plugin; it has no state between calls.
struct Slow;

export!(Slow);

/// The most steps one plan may ask for.
const MAX_STEPS: u64 = 10_000;
/// How many slices a step's sleep is cut into; progress is reported after
/// each.
const SLICES: u64 = 4;

/// The number in parameter `key`, or `default` if it is absent.
fn number(params: &[Param], key: &str, default: u64) -> Result<u64, PluginError> {
    match params.iter().find(|(k, _)| k == key) {
        None => Ok(default),
        Some((_, v)) => v.trim().parse().map_err(|_| {
            PluginError::InvalidInput(format!("param `{key}` must be a whole number, not {v:?}"))
        }),
    }
}

impl strategy::Guest for Slow {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let steps = number(&action.params, "steps", 1)?;
        let ms = number(&action.params, "ms", 1000)?;
        if steps > MAX_STEPS {
            return Err(PluginError::InvalidInput(format!(
                "param `steps` must be at most {MAX_STEPS}"
            )));
        }
        let steps = (1..=steps)
            .map(|i| Step {
                id: format!("s{i}"),
                title: format!("Sleep {ms} ms"),
                params: vec![("ms".into(), ms.to_string())],
                targets: vec![format!("slow/s{i}.txt")],
            })
            .collect::<Vec<_>>();
        Ok(PlanProposal {
            summary: format!("Sleep {ms} ms in each of {} steps", steps.len()),
            steps,
        })
    }
}

impl execution::Guest for Slow {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        let ms = number(&step.params, "ms", 1000)?;
        log(Level::Info, &format!("step {}: sleeping {ms} ms", step.id));
        let mut slept = 0;
        for slice in 1..=SLICES {
            let until = (u128::from(ms) * u128::from(slice) / u128::from(SLICES)) as u64;
            std::thread::sleep(Duration::from_millis(until - slept));
            slept = until;
            report(
                slept,
                ms,
                &format!("step {}: slept {slept} of {ms} ms", step.id),
            );
        }
        Ok(StepOutcome {
            changes: vec![Change::Write(FileWrite {
                path: format!("slow/{}.txt", step.id),
                contents: format!("done {}\n", step.id).into_bytes(),
            })],
            summary: format!("slept {ms} ms"),
        })
    }
}
