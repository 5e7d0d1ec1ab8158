//! Progress events a front end can show while a phase runs.

use std::sync::Arc;

use super::Phase;

/// Progress of a running phase, for a front end to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A phase started.
    PhaseStarted {
        /// Plan id.
        plan_id: String,
        /// The phase.
        phase: Phase,
    },
    /// Execute is about to run step `index` (0-based) of `total`.
    StepStarted {
        /// Index.
        index: usize,
        /// Count.
        total: usize,
        /// The step's title.
        title: String,
    },
    /// A step finished.
    StepFinished {
        /// Index.
        index: usize,
        /// The executor's summary.
        summary: String,
        /// How many changes it returned.
        changes: usize,
    },
}

/// A callback receiving [`Progress`].
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;
