//! The `progress` import (since `lockstep:plugin@0.2.0`): a plugin's progress
//! reports become `info` events on the plugin log (stream `progress`, tagged
//! with plugin, version and plan like its log lines) and, when the lifecycle
//! listens, [`Progress::PluginProgress`] events on its progress callback.
//!
//! Reports count against the call's log budget: past it they are neither
//! logged nor passed on, so a plugin reporting in a tight loop cannot flood
//! the log or the terminal.

use super::log::{one_line, truncate, LogLevel, PluginLog};
use crate::lifecycle::progress::{Progress, ProgressFn};

/// Longest progress message kept, in bytes.
pub const MAX_PROGRESS_MESSAGE: usize = 1024;

/// Where one call's progress reports go.
#[derive(Clone)]
pub struct ProgressSink {
    log: PluginLog,
    callback: Option<ProgressFn>,
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressSink")
            .field("log", &self.log)
            .field("callback", &self.callback.is_some())
            .finish()
    }
}

impl ProgressSink {
    /// Reports logged on `log` and passed to `callback`, if any.
    pub fn new(log: PluginLog, callback: Option<ProgressFn>) -> Self {
        ProgressSink { log, callback }
    }

    /// One report: `done` of `total` units (`total` 0: unknown).
    pub fn report(&self, done: u64, total: u64, message: &str) {
        // Cut first: trimming or escaping never looks past the kept part.
        let message = one_line(truncate(message, MAX_PROGRESS_MESSAGE).trim()).into_owned();
        let line = match total {
            0 => format!("progress {done}: {message}"),
            total => format!("progress {done}/{total}: {message}"),
        };
        if !self.log.line(LogLevel::Info, "progress", &line) {
            return;
        }
        if let Some(callback) = &self.callback {
            callback(&Progress::PluginProgress {
                plugin: self.log.plugin().to_string(),
                done,
                total,
                message,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::plugins::limits::Limits;

    fn sink(log_lines: u64) -> (ProgressSink, PluginLog, Arc<Mutex<Vec<Progress>>>) {
        let limits = Limits {
            log_lines,
            ..Limits::DEFAULT
        };
        let log = PluginLog::new("p", "1.0.0", "plan", &limits);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let events = seen.clone();
        let callback: ProgressFn =
            Arc::new(move |p: &Progress| events.lock().unwrap().push(p.clone()));
        (ProgressSink::new(log.clone(), Some(callback)), log, seen)
    }

    #[test]
    fn reports_are_cleaned_and_passed_on() {
        let (sink, log, seen) = sink(10);
        sink.report(1, 4, "copying\n\x1b[2Ja.txt");
        sink.report(7, 0, &"x".repeat(5000));
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen[0],
            Progress::PluginProgress {
                plugin: "p".into(),
                done: 1,
                total: 4,
                message: "copying\\n\\u{1b}[2Ja.txt".into()
            }
        );
        let Progress::PluginProgress { message, total, .. } = &seen[1] else {
            panic!("{:?}", seen[1])
        };
        assert_eq!((message.len(), *total), (MAX_PROGRESS_MESSAGE, 0));
        assert_eq!(log.stats().emitted, 2);
    }

    #[test]
    fn reports_past_the_log_budget_are_dropped() {
        let (sink, log, seen) = sink(3);
        for i in 0..100 {
            sink.report(i, 100, "step");
        }
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert_eq!(log.stats().dropped, 97);
    }
}
