//! Where a plan is: its phase and the state within it.

use std::fmt;
use std::str::FromStr;

use super::UnknownValue;

/// The phase a plan is in. The action itself (DESIGN §2's first phase) is
/// what `plan new` reads: a plan exists only from strategize/queued on, so
/// no plan is ever in an "action" phase.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A strategist proposes steps.
    Strategize,
    /// An executor runs the steps into a changeset.
    Execute,
    /// The host writes the changeset to the project.
    Apply,
}

/// The state within a phase.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting to run.
    Queued,
    /// Running under the plan lock.
    Processing,
    /// Finished successfully.
    Complete,
    /// Failed (or was interrupted); the phase may be retried.
    Errored,
    /// The changeset was written to the project (terminal).
    Applied,
    /// Cancelled by a user (terminal).
    Cancelled,
}

/// Every phase, in order.
pub const PHASES: [Phase; 3] = [Phase::Strategize, Phase::Execute, Phase::Apply];
/// Every state.
pub const STATES: [State; 6] = [
    State::Queued,
    State::Processing,
    State::Complete,
    State::Errored,
    State::Applied,
    State::Cancelled,
];

/// Where a plan is: a phase and a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// The phase.
    pub phase: Phase,
    /// The state within the phase.
    pub state: State,
}

impl Status {
    /// Shorthand constructor.
    pub const fn new(phase: Phase, state: State) -> Self {
        Status { phase, state }
    }

    /// Whether no command can move the plan any more.
    pub fn is_terminal(self) -> bool {
        matches!(self.state, State::Applied | State::Cancelled)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Strategize => "strategize",
            Phase::Execute => "execute",
            Phase::Apply => "apply",
        })
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Queued => "queued",
            State::Processing => "processing",
            State::Complete => "complete",
            State::Errored => "errored",
            State::Applied => "applied",
            State::Cancelled => "cancelled",
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.phase, self.state)
    }
}

impl FromStr for Phase {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        PHASES
            .into_iter()
            .find(|p| p.to_string() == s)
            .ok_or_else(|| UnknownValue::new("phase", s))
    }
}

impl FromStr for State {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        STATES
            .into_iter()
            .find(|p| p.to_string() == s)
            .ok_or_else(|| UnknownValue::new("state", s))
    }
}

impl FromStr for Status {
    type Err = UnknownValue;
    /// Reads `phase/state`, as [`Status`]'s `Display` writes it.
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        let (phase, state) = s
            .split_once('/')
            .ok_or_else(|| UnknownValue::new("status", s))?;
        Ok(Status::new(phase.parse()?, state.parse()?))
    }
}
