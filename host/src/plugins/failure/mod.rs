//! A failed plugin call (a trap, or an instantiation that failed) mapped
//! into the [`PluginError`] taxonomy: the host's limits first (deadline,
//! fuel, memory, what a plugin may hand over), then a trap in the author's
//! terms.
//!
//! A trap's message is one sentence naming the export and step, what the
//! plugin did and what to do instead, read from what the guest's language
//! runtime wrote to stderr just before it trapped ([`cause`], worded by
//! [`words`]): the author's exception and its message, or the field whose
//! value has the wrong type and the type it needs. Advice that cannot apply
//! to a plugin (`RUST_BACKTRACE`: a plugin has no environment) is left out.
//! The raw trap reason and the wasm backtrace stay in
//! [`PluginError::Trap::backtrace`], which the CLI shows with `--verbose`.

mod cause;
mod words;

use wasmtime::component::ResourceTableError;
use wasmtime::{Trap, WasmBacktrace};

use super::call::{timeout, Callee, Failure, Request};
use super::engine::file_name;
use super::log::WriteOverPermit;
use crate::lifecycle::PluginError;

/// Which export a call ran, and for which step: what a failure names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSite {
    /// `strategy.strategize`.
    Strategize,
    /// `execution.execute` of the step with this id.
    Execute {
        /// The step's id.
        step: String,
    },
}

impl CallSite {
    /// The export and step `request` calls.
    pub fn of(request: &Request) -> CallSite {
        match request {
            Request::Strategize(_) => CallSite::Strategize,
            Request::Execute(step) => CallSite::Execute {
                step: step.id.clone(),
            },
        }
    }
}

impl std::fmt::Display for CallSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallSite::Strategize => write!(f, "`strategize`"),
            CallSite::Execute { step } => write!(f, "`execute` (step `{step}`)"),
        }
    }
}

/// What is known about a failed call besides the error itself.
pub struct Failed<'a> {
    /// The plugin and its limits.
    pub callee: Callee<'a>,
    /// The export and step.
    pub site: &'a CallSite,
    /// Whether the memory limiter refused a growth.
    pub memory_refused: bool,
    /// The last lines the plugin wrote to stderr, oldest first.
    pub stderr_tail: &'a [String],
}

/// Map a trap or instantiation failure into the plugin error taxonomy.
pub fn map_failure(failure: Failure, failed: &Failed<'_>) -> PluginError {
    let (err, instantiating) = match failure {
        Failure::Instantiate(e) => (e, true),
        Failure::Call(e) => (e, false),
    };
    let trap = err.downcast_ref::<Trap>().copied();
    if let Some(limit) = over_a_limit(&err, trap, failed) {
        return limit;
    }
    let callee = failed.callee;
    if instantiating && trap.is_none() {
        return PluginError::Load(format!(
            "`{}` could not be instantiated: {err}",
            file_name(callee.path)
        ));
    }
    let reason = match trap {
        Some(trap) => trap.to_string(),
        None => err.root_cause().to_string(),
    };
    let message = match cause::read(failed.stderr_tail) {
        Some(cause @ cause::Cause::Panic { .. }) => {
            format!("{} ({reason})", words::sentence(&cause, failed.site))
        }
        Some(cause) => words::sentence(&cause, failed.site),
        None => unexplained(&reason, failed),
    };
    let backtrace = match err.downcast_ref::<WasmBacktrace>() {
        Some(bt) => bt.to_string(),
        None => "no wasm backtrace was captured".to_string(),
    };
    PluginError::Trap {
        plugin: callee.name.to_string(),
        message,
        backtrace: format!(
            "in plugin `{}` ({}):\n{reason}\n{backtrace}",
            callee.name,
            file_name(callee.path)
        ),
    }
}

/// The message of a trap whose stderr names no known cause: the reason
/// with the call site, and what stderr said (or that it said nothing).
fn unexplained(reason: &str, failed: &Failed<'_>) -> String {
    let lines = cause::meaningful(failed.stderr_tail);
    if !lines.is_empty() {
        return format!("{reason} in {}; stderr: {}", failed.site, lines.join(" | "));
    }
    let unreachable = reason.contains("unreachable");
    if !unreachable {
        return format!("{reason} in {}", failed.site);
    }
    let can_write = failed
        .callee
        .loaded
        .shape
        .imports
        .iter()
        .any(|i| i.starts_with("wasi:cli/stderr@"));
    words::silent(failed.site, reason, can_write)
}

/// A failure that is the plugin going past one of the host's limits, or
/// the host out of instances.
fn over_a_limit(
    err: &wasmtime::Error,
    trap: Option<Trap>,
    failed: &Failed<'_>,
) -> Option<PluginError> {
    let callee = failed.callee;
    let plugin = callee.name.to_string();
    match trap {
        Some(Trap::Interrupt) => return Some(timeout(&plugin, &callee.limits)),
        Some(Trap::OutOfFuel) => {
            return Some(PluginError::OutOfFuel {
                plugin,
                fuel: callee.limits.fuel.unwrap_or(0),
            })
        }
        _ => {}
    }
    if is_transfer_limit(err) {
        return Some(PluginError::TransferLimit {
            plugin,
            limit_bytes: callee.limits.transfer_bytes,
        });
    }
    if let Some(over) = over_host_call_limit(err, callee) {
        return Some(over);
    }
    if failed.memory_refused {
        return Some(PluginError::OutOfMemory {
            plugin,
            limit_bytes: callee.limits.memory_bytes,
        });
    }
    err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .map(|_| {
            PluginError::Retryable(format!(
                "too many plugin instances are running at once ({err}); try again"
            ))
        })
}

/// Whether `err` is wasmtime refusing to copy more than the store's
/// hostcall fuel out of the plugin. wasmtime's error type for it is
/// private, so its message is matched; `transfer_limit_is_typed` in the
/// plugin tests catches a wasmtime upgrade that rewords it.
fn is_transfer_limit(err: &wasmtime::Error) -> bool {
    err.chain().any(|e| {
        e.to_string()
            .contains("fuel allocated for hostcalls has been exhausted")
    })
}

/// The first error of type `E` in `err`'s chain.
fn find<E: std::error::Error + 'static>(err: &wasmtime::Error) -> Option<&E> {
    err.chain().find_map(|e| e.downcast_ref::<E>())
}

/// Whether `err` is wasi's refusal of a `get-random-bytes` call over the
/// context's maximum. wasi's error for it is a plain message, so the
/// message is matched; `random_bytes_per_call_are_bounded` in
/// `tests/tests/hostile.rs` catches a wasmtime-wasi upgrade that rewords it.
fn is_random_limit(err: &wasmtime::Error) -> bool {
    err.chain().any(|e| {
        let m = e.to_string();
        m.starts_with("requested len") && m.contains("exceeds limit")
    })
}

/// A failure that is the plugin going past one of the host's limits on
/// host calls: one stdout/stderr write over its permit, a full resource
/// table, a random-bytes request over the maximum.
fn over_host_call_limit(err: &wasmtime::Error, callee: Callee<'_>) -> Option<PluginError> {
    let plugin = callee.name.to_string();
    let limits = &callee.limits;
    if let Some(w) = find::<WriteOverPermit>(err) {
        return Some(PluginError::OverLimit {
            plugin,
            limit: "stdio_write_bytes",
            max: w.permit as u64,
            detail: format!(
                "{w}; write at most what `check-write` returns at a time (or use `blocking-write-and-flush`)"
            ),
        });
    }
    if matches!(
        find::<ResourceTableError>(err),
        Some(ResourceTableError::Full)
    ) {
        return Some(PluginError::OverLimit {
            plugin,
            limit: "resource_handles",
            max: limits.resource_handles as u64,
            detail: format!(
                "the plugin held more WASI handles (streams, pollables, …) at once than its resource table of {} entries allows ({} for WASI handles and {} for leases); drop handles it no longer needs",
                limits.resource_handles + limits.lease_handles,
                limits.resource_handles,
                limits.lease_handles
            ),
        });
    }
    if is_random_limit(err) {
        return Some(PluginError::OverLimit {
            plugin,
            limit: "random_bytes",
            max: limits.random_bytes,
            detail: format!(
                "one `get-random-bytes` call asked for more than {} bytes; ask for less at a time",
                limits.random_bytes
            ),
        });
    }
    None
}
