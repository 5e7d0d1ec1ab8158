//! `lock-probe`: a test fixture that takes a named lock and reports the result.
//!
//! Action params:
//! - `resource` (required): the lock name passed to `locks.acquire`.
//! - `hold_ms` (default 0): how long to hold the lease before dropping it.
//! - `on_conflict` (default `report`): `fail` returns a conflict as the
//!   step's error (`plugin-error::lock`) instead of reporting it in the
//!   summary, as a plugin that cannot work without its lease does.
//!
//! The single step `probe` changes no files; its summary says what happened:
//! - `acquired <lease name> token <fencing token>`,
//! - `conflict owner=<owner> operation=<operation> resource=<resource>`,
//! - `error <debug of the lock error>`.

wit_bindgen::generate!({
    path: "../../../wit/v0.2.0",
    world: "plugin",
});

use std::time::Duration;

use exports::lockstep::plugin::{execution, strategy};
use lockstep::plugin::locks;
use lockstep::plugin::log::{log, Level};
use lockstep::plugin::types::{
    Action, LockError, Param, PlanProposal, PluginError, Step, StepOutcome,
};

/// The plugin; it has no state between calls.
struct LockProbe;

export!(LockProbe);

/// How long the lease is requested for.
const TTL_MS: u64 = 30_000;

/// The value of parameter `key`, if present.
fn param<'a>(params: &'a [Param], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The `resource` param, which must be present and non-empty.
fn resource(params: &[Param]) -> Result<&str, PluginError> {
    param(params, "resource")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| PluginError::InvalidInput("param `resource` is required".into()))
}

/// The `hold_ms` param (default 0).
fn hold_ms(params: &[Param]) -> Result<u64, PluginError> {
    let v = param(params, "hold_ms").unwrap_or("0");
    v.trim().parse().map_err(|_| {
        PluginError::InvalidInput(format!("param `hold_ms` must be a whole number, not {v:?}"))
    })
}

impl strategy::Guest for LockProbe {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let resource = resource(&action.params)?;
        let hold = hold_ms(&action.params)?;
        Ok(PlanProposal {
            summary: format!("Take the lock {resource:?} and hold it for {hold} ms"),
            steps: vec![Step {
                id: "probe".into(),
                title: format!("Lock {resource}"),
                params: vec![
                    ("resource".into(), resource.into()),
                    ("hold_ms".into(), hold.to_string()),
                    (
                        "on_conflict".into(),
                        param(&action.params, "on_conflict").unwrap_or("report").into(),
                    ),
                ],
                targets: Vec::new(),
            }],
        })
    }
}

impl execution::Guest for LockProbe {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        let resource = resource(&step.params)?;
        let hold = hold_ms(&step.params)?;
        let summary = match locks::acquire(resource, TTL_MS) {
            Ok(lease) => {
                let summary = format!("acquired {} token {}", lease.name(), lease.token());
                log(Level::Info, &format!("{summary}; holding {hold} ms"));
                std::thread::sleep(Duration::from_millis(hold));
                drop(lease);
                summary
            }
            Err(LockError::Conflict(c)) if param(&step.params, "on_conflict") == Some("fail") => {
                log(Level::Warn, &format!("lease {} is held by {}: failing the step", c.resource, c.owner));
                return Err(PluginError::Lock(LockError::Conflict(c)));
            }
            Err(LockError::Conflict(c)) => format!(
                "conflict owner={} operation={} resource={}",
                c.owner, c.operation, c.resource
            ),
            Err(e) => format!("error {e:?}"),
        };
        log(Level::Info, &summary);
        Ok(StepOutcome {
            changes: Vec::new(),
            summary,
        })
    }
}
