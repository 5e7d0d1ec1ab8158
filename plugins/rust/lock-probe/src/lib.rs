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

use std::time::Duration;

use lockstep_sdk::lockstep::plugin::locks;
use lockstep_sdk::prelude::*;
use lockstep_sdk::LockError;

/// The plugin; it has no state between calls.
struct LockProbe;

lockstep_sdk::export!(LockProbe);

/// How long the lease is requested for.
const TTL_MS: u64 = 30_000;

/// The `resource` and `hold_ms` params.
fn probe(params: &Params) -> Result<(String, u64), PluginError> {
    Ok((
        params.required("resource")?.to_string(),
        params.number("hold_ms", 0)?,
    ))
}

impl Strategy for LockProbe {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let params = Params::new(&action.params);
        let (resource, hold) = probe(&params)?;
        Ok(PlanProposal {
            summary: format!("Take the lock {resource:?} and hold it for {hold} ms"),
            steps: vec![Step::new("probe", format!("Lock {resource}"))
                .param("resource", &resource)
                .param("hold_ms", hold.to_string())
                .param("on_conflict", params.get_or("on_conflict", "report"))],
        })
    }
}

impl Execution for LockProbe {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        let params = Params::new(&step.params);
        let (resource, hold) = probe(&params)?;
        // The raw import, not `lockstep_sdk::acquire`: this fixture reports
        // each lock error in its summary instead of failing the step.
        let summary = match locks::acquire(&resource, TTL_MS) {
            Ok(lease) => {
                let summary = format!("acquired {} token {}", lease.name(), lease.token());
                info!("{summary}; holding {hold} ms");
                std::thread::sleep(Duration::from_millis(hold));
                drop(lease);
                summary
            }
            Err(LockError::Conflict(c)) if params.get("on_conflict") == Some("fail") => {
                warn!("lease {} is held by {}: failing the step", c.resource, c.owner);
                return Err(PluginError::Lock(LockError::Conflict(c)));
            }
            Err(LockError::Conflict(c)) => format!(
                "conflict owner={} operation={} resource={}",
                c.owner, c.operation, c.resource
            ),
            Err(e) => format!("error {e:?}"),
        };
        info!("{summary}");
        Ok(StepOutcome::unchanged(summary))
    }
}
