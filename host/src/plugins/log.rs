//! Plugin logging: the `log` import and the plugin's stdout/stderr, turned
//! into `tracing` events tagged with the plugin's name and version and the
//! plan id, within a per-call budget of lines and bytes.
//!
//! Past the budget further lines are dropped and one warning says so. The
//! last few stderr lines are also kept (even past the budget) so that a trap
//! can be reported with the panic message that preceded it.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::limits::Limits;

/// The `tracing` target of every plugin log event.
pub const LOG_TARGET: &str = "lockstep::plugin";

/// Longest partial stdout/stderr line buffered before it is logged anyway.
const MAX_PARTIAL_LINE: usize = 16 * 1024;
/// How many stderr lines are kept for trap reports.
const STDERR_TAIL_LINES: usize = 8;
/// Longest stderr line kept for trap reports.
const STDERR_TAIL_LINE_BYTES: usize = 512;

/// Severity of a plugin log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
}

/// How much one call logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Lines passed on to `tracing`.
    pub emitted: u64,
    /// Lines dropped because the budget was spent.
    pub dropped: u64,
    /// Bytes passed on.
    pub bytes: u64,
}

struct LogState {
    lines_left: u64,
    bytes_left: u64,
    stats: LogStats,
    stderr_tail: VecDeque<String>,
}

struct Inner {
    plugin: String,
    version: String,
    plan: String,
    limits: (u64, u64),
    state: Mutex<LogState>,
}

/// The log of one plugin call. Cheap to clone; clones share the budget.
#[derive(Clone)]
pub struct PluginLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLog")
            .field("plugin", &self.inner.plugin)
            .field("plan", &self.inner.plan)
            .finish()
    }
}

macro_rules! plugin_event {
    ($level:expr, $inner:expr, $stream:expr, $msg:expr) => {
        tracing::event!(
            target: LOG_TARGET,
            $level,
            plugin = %$inner.plugin,
            version = %$inner.version,
            plan = %$inner.plan,
            stream = $stream,
            "{}",
            $msg
        )
    };
}

impl PluginLog {
    /// A log for one call of `plugin` (at `version`) on `plan`, within the
    /// log budget of `limits`.
    pub fn new(plugin: &str, version: &str, plan: &str, limits: &Limits) -> Self {
        PluginLog {
            inner: Arc::new(Inner {
                plugin: plugin.to_string(),
                version: version.to_string(),
                plan: plan.to_string(),
                limits: (limits.log_lines, limits.log_bytes),
                state: Mutex::new(LogState {
                    lines_left: limits.log_lines,
                    bytes_left: limits.log_bytes,
                    stats: LogStats::default(),
                    stderr_tail: VecDeque::new(),
                }),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, LogState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.inner.plugin
    }

    /// Log one line from `stream` (`log`, `stdout`, `stderr` or
    /// `progress`). Returns whether it was within the budget and logged.
    pub fn line(&self, level: LogLevel, stream: &'static str, message: &str) -> bool {
        let message = one_line(message.trim_end_matches(['\r', '\n']));
        let message = message.as_ref();
        let len = message.len() as u64;
        {
            let mut state = self.state();
            if stream == "stderr" && !message.trim().is_empty() {
                if state.stderr_tail.len() == STDERR_TAIL_LINES {
                    state.stderr_tail.pop_front();
                }
                state
                    .stderr_tail
                    .push_back(truncate(message, STDERR_TAIL_LINE_BYTES).to_string());
            }
            if state.lines_left == 0 || state.bytes_left < len {
                state.stats.dropped += 1;
                let first = state.stats.dropped == 1;
                drop(state);
                if first {
                    let (lines, bytes) = self.inner.limits;
                    plugin_event!(
                        tracing::Level::WARN,
                        self.inner,
                        "host",
                        format!("log budget of {lines} lines / {bytes} bytes for this call is spent; further lines are dropped")
                    );
                }
                return false;
            }
            state.lines_left -= 1;
            state.bytes_left -= len;
            state.stats.emitted += 1;
            state.stats.bytes += len;
        }
        match level {
            LogLevel::Trace => plugin_event!(tracing::Level::TRACE, self.inner, stream, message),
            LogLevel::Debug => plugin_event!(tracing::Level::DEBUG, self.inner, stream, message),
            LogLevel::Info => plugin_event!(tracing::Level::INFO, self.inner, stream, message),
            LogLevel::Warn => plugin_event!(tracing::Level::WARN, self.inner, stream, message),
            LogLevel::Error => plugin_event!(tracing::Level::ERROR, self.inner, stream, message),
        }
        true
    }

    /// What was logged so far.
    pub fn stats(&self) -> LogStats {
        self.state().stats
    }

    /// The last stderr lines, oldest first.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.state().stderr_tail.iter().cloned().collect()
    }

    /// Note the end of the call: one summary line if lines were dropped.
    pub fn finish(&self) -> LogStats {
        let stats = self.stats();
        if stats.dropped > 0 {
            plugin_event!(
                tracing::Level::WARN,
                self.inner,
                "host",
                format!(
                    "{} log lines of this call were dropped ({} kept)",
                    stats.dropped, stats.emitted
                )
            );
        }
        stats
    }
}

/// `s` with control characters escaped, so that one plugin line is one log
/// line and cannot forge others.
pub fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The plugin's stdout or stderr: whole lines go to the [`PluginLog`].
#[derive(Clone)]
pub struct StdioLog {
    log: PluginLog,
    stream: &'static str,
    level: LogLevel,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl StdioLog {
    /// stdout, logged at `info`.
    pub fn stdout(log: &PluginLog) -> Self {
        StdioLog {
            log: log.clone(),
            stream: "stdout",
            level: LogLevel::Info,
            partial: Arc::default(),
        }
    }

    /// stderr, logged at `warn`.
    pub fn stderr(log: &PluginLog) -> Self {
        StdioLog {
            log: log.clone(),
            stream: "stderr",
            level: LogLevel::Warn,
            partial: Arc::default(),
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        partial.extend_from_slice(bytes);
        while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=pos).collect();
            self.log
                .line(self.level, self.stream, &String::from_utf8_lossy(&line));
        }
        if partial.len() > MAX_PARTIAL_LINE {
            let line = std::mem::take(&mut *partial);
            self.log
                .line(self.level, self.stream, &String::from_utf8_lossy(&line));
        }
    }

    /// Log whatever partial line is left (at the end of the call).
    pub fn flush_partial(&self) {
        let line = std::mem::take(&mut *self.partial.lock().unwrap_or_else(|e| e.into_inner()));
        if !line.is_empty() {
            self.log
                .line(self.level, self.stream, &String::from_utf8_lossy(&line));
        }
    }
}

impl IsTerminal for StdioLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StdioLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for StdioLog {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for StdioLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for StdioLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_caps_lines_and_bytes() {
        let limits = Limits {
            log_lines: 3,
            log_bytes: 10,
            ..Limits::DEFAULT
        };
        let log = PluginLog::new("p", "1.0.0", "plan", &limits);
        log.line(LogLevel::Info, "log", "12345");
        log.line(LogLevel::Info, "log", "1234567");
        log.line(LogLevel::Info, "log", "12345");
        log.line(LogLevel::Info, "log", "1");
        log.line(LogLevel::Info, "log", "2");
        assert_eq!(
            log.finish(),
            LogStats {
                emitted: 2,
                dropped: 3,
                bytes: 10
            }
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(one_line("a\nb\x1b[31mc\td"), "a\\nb\\u{1b}[31mc\td");
        assert!(matches!(one_line("plain"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn stdio_is_split_into_lines_and_stderr_tail_is_kept() {
        let log = PluginLog::new("p", "1.0.0", "plan", &Limits::DEFAULT);
        let mut err = StdioLog::stderr(&log);
        OutputStream::write(&mut err, Bytes::from_static(b"thread panicked\nat src/lib")).unwrap();
        OutputStream::write(&mut err, Bytes::from_static(b".rs:3\n")).unwrap();
        OutputStream::write(&mut err, Bytes::from_static(b"no newline")).unwrap();
        err.flush_partial();
        assert_eq!(
            log.stderr_tail(),
            vec!["thread panicked", "at src/lib.rs:3", "no newline"]
        );
        assert_eq!(log.stats().emitted, 3);
    }
}
