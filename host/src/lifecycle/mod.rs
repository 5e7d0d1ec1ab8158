//! The plan lifecycle: Action → Strategize → Execute → Apply.
//!
//! [`transition`] decides every status change (DESIGN §2);
//! [`PlanLifecycleService`] carries commands out under the plan lock, with
//! versioned, fenced writes and an event for each transition: one function
//! per phase (`service.rs`), one runner for all of them (`run.rs`).

mod action;
mod error;
mod plugin;
pub mod progress;
mod run;
mod service;
mod start;
mod transition;

/// The plan vocabulary the lifecycle speaks, defined in [`crate::model`].
pub use crate::model::{
    Action, FileChange, Phase, PlanProposal, State, Status, Step, StepOutcome, PHASES, STATES,
};
pub use action::{parse_action, read_action, ActionError, Location, PluginRole};
pub use error::LifecycleError;
pub use plugin::{
    Executor, PluginContext, PluginError, PluginLockError, PluginProvider, Strategist,
};
pub use service::{ApplyReport, LifecycleOptions, PlanLifecycleService, PlanView};
pub use transition::{transition, Command, InvalidTransition, Transition, COMMANDS};

#[cfg(test)]
mod runtime_tests;
