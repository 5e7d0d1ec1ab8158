//! The shared vocabulary: plans, their status, actions, proposals, changes
//! and the records the store keeps. Every other module may use it; it uses
//! none of them (docs/architecture.md, "Layers").

mod plan;
mod records;
mod status;

pub use plan::{Action, FileChange, PlanProposal, Step, StepOutcome};
pub use records::{ChangeKind, ChangeRecord, EventRecord, PlanRecord, StepResult};
pub use status::{Phase, State, Status, PHASES, STATES};

/// A stored or typed-in word that names no known value (a phase, a state, a
/// change kind).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownValue {
    /// What was being read, e.g. `phase`.
    pub kind: &'static str,
    /// The word found.
    pub value: String,
}

impl UnknownValue {
    /// An unknown `value` of `kind`.
    pub fn new(kind: &'static str, value: &str) -> Self {
        UnknownValue {
            kind,
            value: value.to_owned(),
        }
    }
}
