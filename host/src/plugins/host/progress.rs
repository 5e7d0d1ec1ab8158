//! The `progress` capability (since `lockstep:plugin@0.2.0`): a plugin's
//! progress reports become `info` events on the plugin log (stream `progress`, tagged
//! with plugin, version and plan like its log lines) and, when the lifecycle
//! listens, [`Progress::PluginProgress`] events on its progress callback.
//!
//! Reports count against the call's log budget: past it they are neither
//! logged nor passed on, so a plugin reporting in a tight loop cannot flood
//! the log or the terminal.

use super::super::bindings::latest::lockstep::plugin::progress as wit_progress;
use super::super::log::{one_line, truncate, LogLevel, PluginLog};
use crate::lifecycle::progress::{Progress, ProgressFn};

/// Longest progress message kept, in bytes.
pub const MAX_PROGRESS_MESSAGE: usize = 1024;

/// The `progress` capability's state for one call: where its reports go.
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

impl wit_progress::Host for ProgressSink {
    async fn report(&mut self, done: u64, total: u64, message: String) -> wasmtime::Result<()> {
        ProgressSink::report(self, done, total, &message);
        Ok(())
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

    #[tokio::test]
    async fn the_import_reports_through_the_sink() {
        let (mut sink, log, seen) = sink(10);
        wit_progress::Host::report(&mut sink, 3, 10, "copying".into())
            .await
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [Progress::PluginProgress {
                plugin: "p".into(),
                done: 3,
                total: 10,
                message: "copying".into()
            }]
        );
        assert_eq!(log.stats().emitted, 1);
        // Without a listener reports are only logged.
        let mut quiet = ProgressSink::new(log.clone(), None);
        wit_progress::Host::report(&mut quiet, 4, 10, "copying".into())
            .await
            .unwrap();
        assert_eq!(log.stats().emitted, 2);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
