//! The `log` capability: a plugin's log lines go to its [`PluginLog`], which
//! tags them with plugin, version and plan and keeps them within the call's
//! budget (`plugins/log.rs`).

use super::super::bindings::latest::lockstep::plugin::log as wit_log;
use super::super::log::{LogLevel, PluginLog};

/// The `log` capability's state for one call: the call's log.
#[derive(Debug, Clone)]
pub struct LogCtx {
    log: PluginLog,
}

impl LogCtx {
    /// Lines go to `log`.
    pub fn new(log: PluginLog) -> Self {
        LogCtx { log }
    }
}

impl From<wit_log::Level> for LogLevel {
    fn from(level: wit_log::Level) -> Self {
        match level {
            wit_log::Level::Trace => LogLevel::Trace,
            wit_log::Level::Debug => LogLevel::Debug,
            wit_log::Level::Info => LogLevel::Info,
            wit_log::Level::Warn => LogLevel::Warn,
            wit_log::Level::Error => LogLevel::Error,
        }
    }
}

impl wit_log::Host for LogCtx {
    async fn log(&mut self, level: wit_log::Level, message: String) -> wasmtime::Result<()> {
        self.log.line(level.into(), "log", &message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::limits::Limits;
    use wit_log::Host as _;

    #[test]
    fn every_wit_level_has_its_own() {
        let pairs = [
            (wit_log::Level::Trace, LogLevel::Trace),
            (wit_log::Level::Debug, LogLevel::Debug),
            (wit_log::Level::Info, LogLevel::Info),
            (wit_log::Level::Warn, LogLevel::Warn),
            (wit_log::Level::Error, LogLevel::Error),
        ];
        for (wit, ours) in pairs {
            assert_eq!(LogLevel::from(wit), ours);
        }
    }

    #[tokio::test]
    async fn lines_count_against_the_call_budget() {
        let limits = Limits {
            log_lines: 2,
            ..Limits::DEFAULT
        };
        let log = PluginLog::new("p", "1.0.0", "plan", &limits);
        let mut ctx = LogCtx::new(log.clone());
        for i in 0..5 {
            ctx.log(wit_log::Level::Info, format!("line {i}"))
                .await
                .unwrap();
        }
        let stats = log.stats();
        assert_eq!((stats.emitted, stats.dropped), (2, 3));
    }
}
