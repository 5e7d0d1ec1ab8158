//! Plugin logging: the `log` import and the plugin's stdout/stderr, turned
//! into `tracing` events tagged with the plugin's name and version and the
//! plan id, within a per-call budget of lines and bytes.
//!
//! Past the budget further lines are dropped and one warning says so. The
//! last few stderr lines are also kept (even past the budget) so that a trap
//! can be reported with the panic message that preceded it.
//!
//! Every path through here costs time and memory linear in what the plugin
//! handed over, and that is bounded before any work is done: a stdout or
//! stderr `write` may carry at most the [`STDIO_WRITE_PERMIT`] that
//! `check-write` advertises (a larger one traps, as WASI specifies), a line
//! is cut at [`MAX_LINE_BYTES`] and charged to the budget by its raw bytes
//! before its control characters are escaped, and only what is kept is
//! escaped. So no log call can hold the host past the plugin's deadline.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use super::limits::Limits;

/// The `tracing` target of every plugin log event.
pub const LOG_TARGET: &str = "lockstep::plugin";

/// Most bytes one `write` to the plugin's stdout or stderr may carry: the
/// permit `check-write` advertises. WASI makes a larger write a trap.
pub const STDIO_WRITE_PERMIT: usize = 64 * 1024;
/// Longest log line kept, in the plugin's raw bytes; the rest of a longer
/// line is cut (before escaping) and the cut is marked.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Longest partial stdout/stderr line buffered before it is logged anyway.
const MAX_PARTIAL_LINE: usize = MAX_LINE_BYTES;
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
    ///
    /// The line is cut at [`MAX_LINE_BYTES`] and charged by its raw bytes
    /// first; only a line that is kept has its control characters escaped.
    pub fn line(&self, level: LogLevel, stream: &'static str, message: &str) -> bool {
        let kept = truncate(message, MAX_LINE_BYTES);
        let cut = message.len() - kept.len();
        self.kept_line(level, stream, kept, cut)
    }

    /// Log `kept`, the first bytes of a line whose last `cut` bytes were
    /// cut off.
    fn kept_line(&self, level: LogLevel, stream: &'static str, kept: &str, cut: usize) -> bool {
        let kept = if cut == 0 {
            kept.trim_end_matches(['\r', '\n'])
        } else {
            kept
        };
        let len = kept.len() as u64;
        {
            let mut state = self.state();
            if stream == "stderr" && !kept.trim().is_empty() {
                if state.stderr_tail.len() == STDERR_TAIL_LINES {
                    state.stderr_tail.pop_front();
                }
                state
                    .stderr_tail
                    .push_back(one_line(truncate(kept, STDERR_TAIL_LINE_BYTES)).into_owned());
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
        let mut message = one_line(kept);
        if cut > 0 {
            message.to_mut().push_str(&format!(
                " … [{cut} more bytes cut: lines are kept up to {MAX_LINE_BYTES} bytes]"
            ));
        }
        let message = message.as_ref();
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

    /// Split `bytes` into lines in one pass and log each; keep the
    /// unfinished last line for the next write. Linear in `bytes`.
    fn write_bytes(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(pos + 1);
            if partial.is_empty() {
                self.emit(line);
            } else {
                partial.extend_from_slice(line);
                let whole = std::mem::take(&mut *partial);
                self.emit(&whole);
            }
            rest = tail;
        }
        partial.extend_from_slice(rest);
        if partial.len() > MAX_PARTIAL_LINE {
            let line = std::mem::take(&mut *partial);
            self.emit(&line);
        }
    }

    /// Log one line of raw bytes: cut first, then decoded.
    fn emit(&self, line: &[u8]) {
        let kept = &line[..line.len().min(MAX_LINE_BYTES)];
        let text = String::from_utf8_lossy(kept);
        self.log
            .kept_line(self.level, self.stream, &text, line.len() - kept.len());
    }

    /// Log whatever partial line is left (at the end of the call).
    pub fn flush_partial(&self) {
        let line = std::mem::take(&mut *self.partial.lock().unwrap_or_else(|e| e.into_inner()));
        if !line.is_empty() {
            self.emit(&line);
        }
    }
}

/// A plugin wrote more to its stdout or stderr at once than `check-write`
/// permitted. WASI makes this a trap; the call fails with
/// [`PluginError::OverLimit`](crate::lifecycle::PluginError::OverLimit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("one write of {len} bytes to {stream} exceeds the {permit} bytes `check-write` permitted")]
pub struct WriteOverPermit {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The bytes the plugin tried to write.
    pub len: usize,
    /// The permit.
    pub permit: usize,
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
        if bytes.len() > STDIO_WRITE_PERMIT {
            return Err(StreamError::Trap(wasmtime::Error::new(WriteOverPermit {
                stream: self.stream,
                len: bytes.len(),
                permit: STDIO_WRITE_PERMIT,
            })));
        }
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(STDIO_WRITE_PERMIT)
    }
}

impl AsyncWrite for StdioLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // A short write is allowed here: take at most one permit's worth.
        let n = buf.len().min(STDIO_WRITE_PERMIT);
        self.write_bytes(&buf[..n]);
        Poll::Ready(Ok(n))
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

    #[test]
    fn a_write_over_the_permit_is_refused() {
        let log = PluginLog::new("p", "1.0.0", "plan", &Limits::DEFAULT);
        let mut out = StdioLog::stdout(&log);
        assert_eq!(
            OutputStream::check_write(&mut out).unwrap(),
            STDIO_WRITE_PERMIT
        );
        let at = Bytes::from(vec![b'\n'; STDIO_WRITE_PERMIT]);
        OutputStream::write(&mut out, at).unwrap();
        let over = Bytes::from(vec![b'\n'; STDIO_WRITE_PERMIT + 1]);
        let Err(StreamError::Trap(e)) = OutputStream::write(&mut out, over) else {
            panic!("a write over the permit must trap")
        };
        assert_eq!(
            e.downcast_ref::<WriteOverPermit>(),
            Some(&WriteOverPermit {
                stream: "stdout",
                len: STDIO_WRITE_PERMIT + 1,
                permit: STDIO_WRITE_PERMIT
            })
        );
        // The permitted write was split into its lines (all but the budget
        // dropped); the refused one was not looked at.
        let stats = log.finish();
        assert_eq!(stats.emitted + stats.dropped, STDIO_WRITE_PERMIT as u64);
    }

    #[test]
    fn lines_are_split_across_writes() {
        let log = PluginLog::new("p", "1.0.0", "plan", &Limits::DEFAULT);
        let mut out = StdioLog::stdout(&log);
        OutputStream::write(&mut out, Bytes::from_static(b"a\nb")).unwrap();
        OutputStream::write(&mut out, Bytes::from_static(b"c\n\nd")).unwrap();
        out.flush_partial();
        // "a", "bc", "", "d": four lines, three bytes.
        assert_eq!(
            log.stats(),
            LogStats {
                emitted: 4,
                dropped: 0,
                bytes: 4
            }
        );
    }

    #[test]
    fn log_control_characters_are_charged_before_escaping() {
        // Room for one cut line of raw bytes, not for its escaped form
        // (six bytes per `\x01`).
        let limits = Limits {
            log_bytes: MAX_LINE_BYTES as u64,
            ..Limits::DEFAULT
        };
        let log = PluginLog::new("p", "1.0.0", "plan", &limits);
        let flood = "\x01".repeat(4 * MAX_LINE_BYTES);
        assert!(log.line(LogLevel::Info, "log", &flood), "kept, cut");
        assert!(!log.line(LogLevel::Info, "log", "x"), "the budget is spent");
        assert_eq!(
            log.finish(),
            LogStats {
                emitted: 1,
                dropped: 1,
                bytes: MAX_LINE_BYTES as u64
            }
        );
    }

    #[test]
    fn long_stdio_lines_are_cut_before_they_are_decoded() {
        let log = PluginLog::new("p", "1.0.0", "plan", &Limits::DEFAULT);
        let mut err = StdioLog::stderr(&log);
        let mut long = vec![0x01u8; STDIO_WRITE_PERMIT - 1];
        long.push(b'\n');
        OutputStream::write(&mut err, Bytes::from(long)).unwrap();
        assert_eq!(log.stats().bytes, MAX_LINE_BYTES as u64);
        assert_eq!(
            log.stderr_tail()[0],
            "\\u{1}".repeat(STDERR_TAIL_LINE_BYTES)
        );
    }
}
