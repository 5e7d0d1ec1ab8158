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

use wasmtime::component::Instance;
use wasmtime::{Store, UpdateDeadline};

use super::bindings::latest::lockstep::plugin::types as wit;
use super::bindings::{ExecutionIndices, StrategyIndices};
use super::convert;
use super::engine::{Loaded, Runtime};
use super::failure::{map_failure, CallSite, Failed};
use super::host::{LeaseLedger, PluginState};
use super::limits::Limits;
use super::log::{LogStats, PluginLog, StdioLog};
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

/// How a call failed before the plugin could answer.
pub(super) enum Failure {
    /// The instance could not be created (or its export not found).
    Instantiate(wasmtime::Error),
    /// The call trapped or failed.
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

/// An instance kept alive between the calls of one phase, for plugins whose
/// manifest sets `reuse_instance = true` (Python and JavaScript components
/// cost about a millisecond to instantiate). It is dropped after any trap,
/// timeout or cancellation, so a failed call never leaves state behind.
pub struct Warm {
    store: Store<PluginState>,
    instance: Instance,
    stdio: [StdioLog; 2],
    stderr_log: PluginLog,
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
    let kept = slot.as_mut().and_then(|s| s.take());
    let (mut store, instance, stdio, stderr_log) = match kept {
        Some(mut w) => {
            w.store.data_mut().rebind(
                ctx.project.clone(),
                ctx.locks.clone(),
                ledger.clone(),
                log.clone(),
                ctx.progress.clone(),
            );
            (w.store, Some(w.instance), w.stdio, w.stderr_log)
        }
        None => {
            let stdio = [StdioLog::stdout(&log), StdioLog::stderr(&log)];
            let state = PluginState::new(
                ctx.project.clone(),
                ctx.locks.clone(),
                ledger.clone(),
                log.clone(),
                stdio.clone(),
                &limits,
                ctx.progress.clone(),
            );
            let mut store = Store::new(runtime.engine(), state);
            store.limiter(|state| &mut state.limiter);
            (store, None, stdio, log.clone())
        }
    };
    // Bounds what the host copies out of the plugin per crossing: without
    // it a small component could return a list whose elements all point at
    // the same large buffer, and the host would copy it once per element.
    store.set_hostcall_fuel(limits.transfer_fuel());
    // Every epoch tick the running plugin yields to the executor (so that a
    // busy plugin neither starves other tasks, such as lease renewal, nor
    // delays cancellation), and past its deadline it is killed.
    let deadline = started + limits.timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        })
    });
    if runtime.fuel() {
        if let Err(e) = store.set_fuel(limits.fuel.unwrap_or(u64::MAX)) {
            return (
                Err(PluginError::Load(format!(
                    "cannot set the fuel budget: {e}"
                ))),
                CallReport::default(),
            );
        }
    }

    let pre = callee.loaded.pre.clone();
    let exports = (
        callee.loaded.strategy.clone(),
        callee.loaded.execution.clone(),
    );
    let plan_id = ctx.plan_id.clone();
    let site = CallSite::of(&request);
    let keep = warm.is_some();
    let work = async move {
        let instance = match instance {
            Some(instance) => Ok(instance),
            None => pre
                .instantiate_async(&mut store)
                .await
                .map_err(Failure::Instantiate),
        };
        let result = match &instance {
            Ok(instance) => invoke(&mut store, instance, exports, &plan_id, request).await,
            Err(_) => Err(Failure::Instantiate(wasmtime::format_err!(
                "instantiation failed"
            ))),
        };
        let memory_refused = store.data().limiter.refused().is_some();
        let conflicts = store.data().conflicts().clone();
        let (result, kept) = match (instance, result) {
            (Err(failure), _) => (Err(failure), None),
            (Ok(instance), result) => {
                let kept = (keep && result.is_ok()).then_some(instance);
                (result, kept)
            }
        };
        Finished {
            result,
            memory_refused,
            conflicts,
            kept: kept.map(|instance| (store, instance)),
        }
    };

    let finished = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => None,
        r = tokio::time::timeout(limits.timeout + TIMEOUT_GRACE, work) => Some(r),
    };
    for s in &stdio {
        s.flush_partial();
    }
    let result = match finished {
        None => Err(PluginError::Cancelled(format!(
            "`{}` was stopped because the phase was cancelled",
            callee.name
        ))),
        Some(Err(_elapsed)) => Err(timeout(callee.name, &limits)),
        Some(Ok(Finished {
            result: Ok(Ok(raw)),
            kept,
            ..
        })) => {
            let response = match raw {
                RawResponse::Proposal(p) => {
                    convert::proposal_from_wit(p, callee.name, &limits).map(Response::Proposal)
                }
                RawResponse::Outcome(o) => {
                    convert::outcome_from_wit(o, callee.name, &limits).map(Response::Outcome)
                }
            };
            if let (Some(slot), Some((store, instance))) = (slot.as_mut(), kept) {
                **slot = Some(Warm {
                    store,
                    instance,
                    stdio: stdio.clone(),
                    stderr_log: stderr_log.clone(),
                });
            }
            response
        }
        Some(Ok(Finished {
            result: Ok(Err(e)),
            conflicts,
            kept,
            ..
        })) => {
            if let (Some(slot), Some((store, instance))) = (slot.as_mut(), kept) {
                **slot = Some(Warm {
                    store,
                    instance,
                    stdio: stdio.clone(),
                    stderr_log: stderr_log.clone(),
                });
            }
            Err(convert::plugin_error_from_wit(e, &conflicts))
        }
        Some(Ok(Finished {
            result: Err(failure),
            memory_refused,
            ..
        })) => Err(map_failure(
            failure,
            &Failed {
                callee,
                site: &site,
                memory_refused,
                stderr_tail: &stderr_log.stderr_tail(),
            },
        )),
    };
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

/// The error of a call killed at its deadline.
pub(super) fn timeout(plugin: &str, limits: &Limits) -> PluginError {
    PluginError::Timeout {
        plugin: plugin.to_string(),
        limit_ms: limits.timeout_ms(),
    }
}
