//! What a plan is made of: the action, the proposal and its steps, and the
//! changes an executor returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the user asked for, as read from an action file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// The action's name, e.g. `add-license-header`.
    pub name: String,
    /// The strategist plugin's name.
    pub strategy: String,
    /// The executor plugin's name.
    pub executor: String,
    /// String parameters handed to both plugins.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// One step of a plan proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Identifier unique within the plan.
    pub id: String,
    /// One human-readable line.
    pub title: String,
    /// Parameters for the executor.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Project-relative paths the step expects to change (informative).
    #[serde(default)]
    pub targets: Vec<String>,
}

/// A strategist's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanProposal {
    /// What the plan will do, for a human.
    pub summary: String,
    /// Steps in execution order.
    pub steps: Vec<Step>,
}

/// One change an executor proposes. Paths are project-relative with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileChange {
    /// Replace or create a file.
    Write {
        /// Project-relative path.
        path: String,
        /// The complete new contents.
        contents: Vec<u8>,
    },
    /// Delete a file.
    Delete {
        /// Project-relative path.
        path: String,
    },
}

impl FileChange {
    /// The path this change targets.
    pub fn path(&self) -> &str {
        match self {
            FileChange::Write { path, .. } | FileChange::Delete { path } => path,
        }
    }
}

/// What an executor returns for one step.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StepOutcome {
    /// Changes in order; later changes to the same path win.
    pub changes: Vec<FileChange>,
    /// One line describing what happened.
    pub summary: String,
}
