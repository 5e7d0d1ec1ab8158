//! `extism-noop`: the component `noop` executor (`../../rust/noop`) as an
//! Extism plugin, the baseline for the plugin call overhead figure.
//!
//! `execute` takes the JSON `{"plan_id": ..., "step": {...}}`, decodes it
//! into the same shape as the component's typed arguments (the component
//! side decodes them through the canonical ABI), ignores it, and returns
//! `{"changes":[],"summary":"noop"}`.

use extism_pdk::{plugin_fn, FnResult, Json};
use serde::{Deserialize, Serialize};

/// The arguments of `execute`: the plan and the step to run.
#[derive(Deserialize)]
pub struct ExecuteInput {
    /// The plan the step belongs to.
    pub plan_id: String,
    /// The step to run.
    pub step: Step,
}

/// One step of a plan, as in the `step` record of the WIT contract.
#[derive(Deserialize)]
pub struct Step {
    /// Identifier unique within the plan.
    pub id: String,
    /// One line a human reads in the proposal.
    pub title: String,
    /// Key/value parameters, in the author's order.
    pub params: Vec<(String, String)>,
    /// Paths the step expects to change.
    pub targets: Vec<String>,
}

/// One change to the project, as in the `change` variant of the contract.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Write a whole file.
    Write {
        /// Project-relative path.
        path: String,
        /// The complete new contents.
        contents: Vec<u8>,
    },
    /// Delete a file (project-relative path).
    Delete(String),
}

/// What `execute` returns, as in the `step-outcome` record of the contract.
#[derive(Serialize)]
pub struct StepOutcome {
    /// Changes to apply; always empty here.
    pub changes: Vec<Change>,
    /// One line describing what the step did.
    pub summary: String,
}

/// Runs a step by doing nothing.
#[plugin_fn]
pub fn execute(Json(_input): Json<ExecuteInput>) -> FnResult<Json<StepOutcome>> {
    Ok(Json(StepOutcome {
        changes: Vec::new(),
        summary: "noop".into(),
    }))
}
