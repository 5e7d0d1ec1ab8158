//! `noop`: a benchmark fixture that measures the host's per-call overhead.
//!
//! The strategist proposes the single step `noop`; the executor changes
//! nothing. Neither reads the workspace nor logs.
//!
//! It is built against `lockstep:plugin@0.1.0`, not the latest version, so
//! that the host's support for plugins of an older minor stays tested.

wit_bindgen::generate!({
    path: "../../../wit/v0.1.0",
    world: "plugin",
});

use exports::lockstep::plugin::{execution, strategy};
use lockstep::plugin::types::{Action, PlanProposal, PluginError, Step, StepOutcome};

/// The plugin; it has no state between calls.
struct Noop;

export!(Noop);

impl strategy::Guest for Noop {
    fn strategize(_plan_id: String, _action: Action) -> Result<PlanProposal, PluginError> {
        Ok(PlanProposal {
            summary: "noop".into(),
            steps: vec![Step {
                id: "noop".into(),
                title: "Do nothing".into(),
                params: Vec::new(),
                targets: Vec::new(),
            }],
        })
    }
}

impl execution::Guest for Noop {
    fn execute(_plan_id: String, _step: Step) -> Result<StepOutcome, PluginError> {
        Ok(StepOutcome {
            changes: Vec::new(),
            summary: "noop".into(),
        })
    }
}
