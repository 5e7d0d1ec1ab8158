//! `slow`: a test fixture whose steps take a known time.
//!
//! Action params:
//! - `steps` (default 1): how many steps to propose (`s1`, `s2`, ...).
//! - `ms` (default 1000): how long each step sleeps, in milliseconds.
//!
//! Each step sleeps (through WASI clocks) in four equal slices, reporting
//! progress through the `progress` import (`lockstep:plugin@0.2.0`) after
//! each, then writes `slow/<step-id>.txt` containing `done <step-id>\n`.

use std::time::Duration;

use lockstep_sdk::prelude::*;

/// The plugin; it has no state between calls.
struct Slow;

lockstep_sdk::export!(Slow);

/// The most steps one plan may ask for.
const MAX_STEPS: u64 = 10_000;
/// How many slices a step's sleep is cut into; progress is reported after
/// each.
const SLICES: u64 = 4;

impl Strategy for Slow {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let params = Params::new(&action.params);
        let steps = params.number("steps", 1)?;
        let ms = params.number("ms", 1000)?;
        if steps > MAX_STEPS {
            return Err(PluginError::InvalidInput(format!(
                "param `steps` must be at most {MAX_STEPS}"
            )));
        }
        let steps = (1..=steps)
            .map(|i| {
                Step::new(format!("s{i}"), format!("Sleep {ms} ms"))
                    .param("ms", ms.to_string())
                    .target(format!("slow/s{i}.txt"))
            })
            .collect::<Vec<_>>();
        Ok(PlanProposal {
            summary: format!("Sleep {ms} ms in each of {} steps", steps.len()),
            steps,
        })
    }
}

impl Execution for Slow {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        let ms = Params::new(&step.params).number("ms", 1000)?;
        info!("step {}: sleeping {ms} ms", step.id);
        let mut slept = 0;
        for slice in 1..=SLICES {
            let until = (u128::from(ms) * u128::from(slice) / u128::from(SLICES)) as u64;
            std::thread::sleep(Duration::from_millis(until - slept));
            slept = until;
            report_progress(
                slept,
                ms,
                &format!("step {}: slept {slept} of {ms} ms", step.id),
            );
        }
        Ok(StepOutcome::new(
            vec![write_text(
                format!("slow/{}.txt", step.id),
                format!("done {}\n", step.id),
            )],
            format!("slept {ms} ms"),
        ))
    }
}
