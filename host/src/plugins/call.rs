//! One plugin call: a fresh store and instance, the limits armed, the call
//! raced against its deadline and the phase's cancellation, every lease
//! released afterwards, and the outcome mapped into [`PluginError`].
//!
//! Two mechanisms enforce the deadline. Running wasm checks the epoch, which
//! the engine advances every few milliseconds: at each tick the plugin yields
//! to the executor, and past its deadline it traps (a busy loop is killed
//! where it spins). The `tokio` timeout drops a call that is parked in a host
//! call such as a WASI sleep, which epochs cannot interrupt. Because a busy
//! plugin yields at every tick, the phase's cancellation stops it promptly
//! too.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use wasmtime::component::{Instance, ResourceTableError};
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};

use super::bindings::latest::lockstep::plugin::types as wit;
use super::bindings::{ExecutionIndices, StrategyIndices};
use super::convert;
use super::engine::{file_name, Loaded, Runtime};
use super::host::{CallScope, LeaseLedger, PluginState};
use super::limits::Limits;
use super::log::{LogStats, PluginLog, StdioLog, WriteOverPermit};
use crate::lifecycle::{PluginContext, PluginError};
use crate::locks::LockConflict;
use crate::model::{Action, PlanProposal, Step, StepOutcome};

/// Extra time the `tokio` timeout allows past the epoch deadline, so that a
/// busy plugin is stopped by its trap (which reports where it was).
const TIMEOUT_GRACE: Duration = Duration::from_millis(100);

/// What the host asks of a plugin.
#[derive(Debug, Clone)]
pub enum Request {
    /// `strategy.strategize`.
    Strategize(Action),
    /// `execution.execute`.
    Execute(Step),
}

/// What the plugin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// From `strategize`.
    Proposal(PlanProposal),
    /// From `execute`.
    Outcome(StepOutcome),
}

/// What a call cost, for logs and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallReport {
    /// Log lines kept and dropped.
    pub log: LogStats,
    /// Leases the plugin still held when the call ended (now released).
    pub leases_released: usize,
    /// Wall-clock time of the call.
    pub elapsed: Duration,
}

/// The plugin being called.
#[derive(Clone, Copy)]
pub struct Callee<'a> {
    /// Plugin name.
    pub name: &'a str,
    /// Plugin version.
    pub version: &'a str,
    /// The component file.
    pub path: &'a Path,
    /// The linked component.
    pub loaded: &'a Loaded,
    /// The limits of this call.
    pub limits: Limits,
}

enum Failure {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

/// What the plugin answered, before it is checked and converted.
enum RawResponse {
    Proposal(wit::PlanProposal),
    Outcome(wit::StepOutcome),
}

struct Finished {
    result: Result<Result<RawResponse, wit::PluginError>, Failure>,
    memory_refused: bool,
    conflicts: HashMap<(String, String), LockConflict>,
    /// The store and instance, when they are to be kept for the next call.
    kept: Option<(Store<PluginState>, Instance)>,
}

/// The plugin's stdout and stderr, and the log they write to: the first
/// call's, for a kept instance (it carries the same plugin and plan tags).
#[derive(Clone)]
struct Stdio {
    streams: [StdioLog; 2],
    log: PluginLog,
}

impl Stdio {
    fn new(log: &PluginLog) -> Self {
        Stdio {
            streams: [StdioLog::stdout(log), StdioLog::stderr(log)],
            log: log.clone(),
        }
    }

    /// Log the unfinished last lines (at the end of a call).
    fn flush_partial(&self) {
        for s in &self.streams {
            s.flush_partial();
        }
    }
}

/// An instance kept alive between the calls of one phase, for plugins whose
/// manifest sets `reuse_instance = true` (Python and JavaScript components
/// cost about a millisecond to instantiate). It is dropped after any trap,
/// timeout or cancellation, so a failed call never leaves state behind.
pub struct Warm {
    store: Store<PluginState>,
    instance: Instance,
    stdio: Stdio,
}

/// Where a [`Warm`] instance waits for the next call of the phase.
pub type WarmSlot = tokio::sync::Mutex<Option<Warm>>;

/// Run `request` against a fresh instance of `callee`, or against the
/// instance kept in `warm` by an earlier call of the same phase.
pub async fn run(
    runtime: &Runtime,
    callee: Callee<'_>,
    ctx: &PluginContext,
    request: Request,
    warm: Option<&WarmSlot>,
) -> (Result<Response, PluginError>, CallReport) {
    let started = Instant::now();
    let limits = callee.limits;
    let log = PluginLog::new(callee.name, callee.version, &ctx.plan_id, &limits);
    let ledger = LeaseLedger::default();
    let mut slot = match warm {
        Some(slot) => Some(slot.lock().await),
        None => None,
    };
    let scope = CallScope {
        project: ctx.project.clone(),
        locks: ctx.locks.clone(),
        leases: ledger.clone(),
        log: log.clone(),
        progress: ctx.progress.clone(),
    };
    let kept = slot.as_mut().and_then(|s| s.take());
    let (mut store, instance, stdio) = open(runtime, kept, scope, &limits);
    if let Err(e) = arm(&mut store, runtime, &limits, started + limits.timeout) {
        return (Err(e), CallReport::default());
    }
    let keep = warm.is_some();
    let work = attempt(store, instance, callee.loaded, &ctx.plan_id, request, keep);
    let finished = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => None,
        r = tokio::time::timeout(limits.timeout + TIMEOUT_GRACE, work) => Some(r),
    };
    stdio.flush_partial();
    let result = settle(finished, callee, slot.as_deref_mut(), &stdio);
    let leases_released = ledger.release_all().await;
    if leases_released > 0 {
        tracing::debug!(plugin = callee.name, plan = %ctx.plan_id, leases_released, "released leases the plugin still held");
    }
    let report = CallReport {
        log: log.finish(),
        leases_released,
        elapsed: started.elapsed(),
    };
    (result, report)
}

/// The store (and instance) this call runs in: the `kept` one rebound to
/// `scope`, or a fresh store with its memory limiter, to be instantiated.
fn open(
    runtime: &Runtime,
    kept: Option<Warm>,
    scope: CallScope,
    limits: &Limits,
) -> (Store<PluginState>, Option<Instance>, Stdio) {
    match kept {
        Some(mut w) => {
            w.store.data_mut().rebind(scope);
            (w.store, Some(w.instance), w.stdio)
        }
        None => {
            let stdio = Stdio::new(&scope.log);
            let state = PluginState::new(scope, stdio.streams.clone(), limits);
            let mut store = Store::new(runtime.engine(), state);
            store.limiter(|state| &mut state.limiter);
            (store, None, stdio)
        }
    }
}

/// Arm the per-call limits on `store`: the transfer cap, the epoch deadline
/// and, when metered, the fuel budget.
fn arm(
    store: &mut Store<PluginState>,
    runtime: &Runtime,
    limits: &Limits,
    deadline: Instant,
) -> Result<(), PluginError> {
    // Bounds what the host copies out of the plugin per crossing: without
    // it a small component could return a list whose elements all point at
    // the same large buffer, and the host would copy it once per element.
    store.set_hostcall_fuel(limits.transfer_fuel());
    // Every epoch tick the running plugin yields to the executor (so that a
    // busy plugin neither starves other tasks, such as lease renewal, nor
    // delays cancellation), and past its deadline it is killed.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        })
    });
    if runtime.fuel() {
        store
            .set_fuel(limits.fuel.unwrap_or(u64::MAX))
            .map_err(|e| PluginError::Load(format!("cannot set the fuel budget: {e}")))?;
    }
    Ok(())
}

/// Instantiate (unless an `instance` is kept) and call the plugin; the
/// store and instance come back in [`Finished::kept`] when `keep` asks for
/// them and the call did not fail.
async fn attempt(
    mut store: Store<PluginState>,
    instance: Option<Instance>,
    loaded: &Loaded,
    plan_id: &str,
    request: Request,
    keep: bool,
) -> Finished {
    let instance = match instance {
        Some(instance) => Ok(instance),
        None => loaded
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(Failure::Instantiate),
    };
    let exports = (loaded.strategy.clone(), loaded.execution.clone());
    let (result, instance) = match instance {
        Ok(instance) => (
            invoke(&mut store, &instance, exports, plan_id, request).await,
            Some(instance),
        ),
        Err(failure) => (Err(failure), None),
    };
    let memory_refused = store.data().limiter.refused().is_some();
    let conflicts = store.data().lock_state().conflicts().clone();
    let kept = instance.filter(|_| keep && result.is_ok());
    Finished {
        result,
        memory_refused,
        conflicts,
        kept: kept.map(|instance| (store, instance)),
    }
}

/// The outcome of a call that `finished` (`None`: it was cancelled; an
/// elapsed timeout: it was dropped), and the instance kept in `slot` when
/// the call returned.
fn settle(
    finished: Option<Result<Finished, tokio::time::error::Elapsed>>,
    callee: Callee<'_>,
    slot: Option<&mut Option<Warm>>,
    stdio: &Stdio,
) -> Result<Response, PluginError> {
    let finished = match finished {
        None => {
            return Err(PluginError::Cancelled(format!(
                "`{}` was stopped because the phase was cancelled",
                callee.name
            )))
        }
        Some(Err(_elapsed)) => return Err(timeout(callee.name, &callee.limits)),
        Some(Ok(finished)) => finished,
    };
    if let (Some(slot), Some((store, instance))) = (slot, finished.kept) {
        *slot = Some(Warm {
            store,
            instance,
            stdio: stdio.clone(),
        });
    }
    match finished.result {
        Ok(Ok(raw)) => checked(raw, callee),
        Ok(Err(e)) => Err(convert::plugin_error_from_wit(e, &finished.conflicts)),
        Err(failure) => Err(map_failure(
            failure,
            callee,
            finished.memory_refused,
            &stdio.log.stderr_tail(),
        )),
    }
}

/// The plugin's answer, checked against the call's limits and converted.
fn checked(raw: RawResponse, callee: Callee<'_>) -> Result<Response, PluginError> {
    match raw {
        RawResponse::Proposal(p) => {
            convert::proposal_from_wit(p, callee.name, &callee.limits).map(Response::Proposal)
        }
        RawResponse::Outcome(o) => {
            convert::outcome_from_wit(o, callee.name, &callee.limits).map(Response::Outcome)
        }
    }
}

async fn invoke(
    store: &mut Store<PluginState>,
    instance: &Instance,
    (strategy, execution): (Option<StrategyIndices>, Option<ExecutionIndices>),
    plan_id: &str,
    request: Request,
) -> Result<Result<RawResponse, wit::PluginError>, Failure> {
    let instance = *instance;
    let missing = |what: &str| {
        Failure::Instantiate(wasmtime::format_err!(
            "the component does not export {what}"
        ))
    };
    match request {
        Request::Strategize(action) => {
            let guest = strategy
                .ok_or_else(|| missing("strategy"))?
                .load(&mut *store, &instance)
                .map_err(Failure::Instantiate)?;
            let r = guest
                .call_strategize(&mut *store, plan_id, &convert::action_to_wit(&action))
                .await
                .map_err(Failure::Call)?;
            Ok(r.map(RawResponse::Proposal))
        }
        Request::Execute(step) => {
            let guest = execution
                .ok_or_else(|| missing("execution"))?
                .load(&mut *store, &instance)
                .map_err(Failure::Instantiate)?;
            let r = guest
                .call_execute(&mut *store, plan_id, &convert::step_to_wit(&step))
                .await
                .map_err(Failure::Call)?;
            Ok(r.map(RawResponse::Outcome))
        }
    }
}

fn timeout(plugin: &str, limits: &Limits) -> PluginError {
    PluginError::Timeout {
        plugin: plugin.to_string(),
        limit_ms: limits.timeout_ms(),
    }
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
fn over_limit(err: &wasmtime::Error, callee: Callee<'_>) -> Option<PluginError> {
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

/// Map a trap or instantiation failure into the plugin error taxonomy.
fn map_failure(
    failure: Failure,
    callee: Callee<'_>,
    memory_refused: bool,
    stderr_tail: &[String],
) -> PluginError {
    let (err, instantiating) = match failure {
        Failure::Instantiate(e) => (e, true),
        Failure::Call(e) => (e, false),
    };
    let plugin = callee.name.to_string();
    let trap = err.downcast_ref::<Trap>().copied();
    match trap {
        Some(Trap::Interrupt) => return timeout(&plugin, &callee.limits),
        Some(Trap::OutOfFuel) => {
            return PluginError::OutOfFuel {
                plugin,
                fuel: callee.limits.fuel.unwrap_or(0),
            }
        }
        _ => {}
    }
    if is_transfer_limit(&err) {
        return PluginError::TransferLimit {
            plugin,
            limit_bytes: callee.limits.transfer_bytes,
        };
    }
    if let Some(over) = over_limit(&err, callee) {
        return over;
    }
    if memory_refused {
        return PluginError::OutOfMemory {
            plugin,
            limit_bytes: callee.limits.memory_bytes,
        };
    }
    if err
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return PluginError::Retryable(format!(
            "too many plugin instances are running at once ({err}); try again"
        ));
    }
    if instantiating && trap.is_none() {
        return PluginError::Load(format!(
            "`{}` could not be instantiated: {err}",
            file_name(callee.path)
        ));
    }
    let mut message = match trap {
        Some(trap) => trap.to_string(),
        None => err.root_cause().to_string(),
    };
    if !stderr_tail.is_empty() {
        message.push_str("; stderr: ");
        message.push_str(&stderr_tail.join(" | "));
    }
    let backtrace = match err.downcast_ref::<WasmBacktrace>() {
        Some(bt) => format!(
            "in plugin `{}` ({}):\n{bt}",
            callee.name,
            file_name(callee.path)
        ),
        None => format!(
            "in plugin `{}` ({}): no wasm backtrace was captured",
            callee.name,
            file_name(callee.path)
        ),
    };
    PluginError::Trap {
        plugin,
        message,
        backtrace,
    }
}
