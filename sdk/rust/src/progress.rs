//! Progress of a long call, through the `progress` import.

use crate::lockstep::plugin::progress::report;

/// Counts finished units of work and reports each to the host, which logs
/// it and shows it to whoever runs the plan ("3/10: formatting a.json").
///
/// ```ignore
/// let mut progress = Progress::new(files.len());
/// for path in &files {
///     progress.advance(&format!("read {path}"));
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Progress {
    done: u64,
    total: u64,
}

impl Progress {
    /// `total` units of work to do (0 when unknown).
    pub fn new(total: usize) -> Self {
        Self {
            done: 0,
            total: total as u64,
        }
    }

    /// One more unit is finished; `message` says in one line what it was.
    pub fn advance(&mut self, message: &str) {
        self.done += 1;
        report(self.done, self.total, message);
    }

    /// How many units are finished.
    pub fn done(&self) -> u64 {
        self.done
    }
}

/// Reports `done` of `total` units (0 when unknown) with a one-line
/// `message`, without a [`Progress`].
pub fn report_progress(done: u64, total: u64, message: &str) {
    report(done, total, message);
}
