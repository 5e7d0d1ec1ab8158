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
    /// The running plugin reported progress (`progress.report`, plugins
    /// built against `lockstep:plugin@0.2.0` or later). During Execute it
    /// belongs to the step last announced by [`Progress::StepStarted`].
    PluginProgress {
        /// The plugin's name.
        plugin: String,
        /// Units of work done.
        done: u64,
        /// Units of work in all; 0 when the plugin does not know.
        total: u64,
        /// What the plugin is doing, one line: control characters escaped,
        /// cut at 1 KiB.
        message: String,
    },
}

/// A callback receiving [`Progress`].
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;
