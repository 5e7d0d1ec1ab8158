//! The plan lifecycle: Action → Strategize → Execute → Apply.
//!
//! [`transition`] decides every status change (DESIGN §2);
//! [`PlanLifecycleService`] carries commands out under the plan lock, with
//! versioned, fenced writes and an event for each transition.

mod action;
mod error;
mod model;
mod plugin;
pub mod progress;
mod service;

pub use action::parse_action;
pub use error::LifecycleError;
pub use model::{
    transition, Command, InvalidTransition, Phase, State, Status, Transition, COMMANDS, PHASES,
    STATES,
};
pub use plugin::{
    Action, Executor, FileChange, PlanProposal, PluginContext, PluginError, PluginLockError,
    PluginProvider, Step, StepOutcome, Strategist,
};
pub use service::{ApplyReport, LifecycleOptions, PlanLifecycleService, PlanView};
