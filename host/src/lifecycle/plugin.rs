//! The seam between the lifecycle and whatever thinks and does the work.
//!
//! The lifecycle calls a [`Strategist`] during Strategize and an [`Executor`]
//! during Execute. The WebAssembly runtime in [`crate::plugins`] implements
//! both; tests may implement them in plain Rust.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::progress::ProgressFn;
use crate::locks::{LockConflict, ScopedLocks};
use crate::model::{Action, PlanProposal, Step, StepOutcome};
use crate::workspace::ProjectView;

/// How a plugin call failed: the plugin's own typed errors plus the ways the
/// host stops a plugin (deadline, memory, trap) and fails to load one.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PluginError {
    /// The action or step parameters are wrong; retrying will not help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The plugin could not get a lock it needed.
    #[error("lock unavailable: {0}")]
    Lock(PluginLockError),
    /// A transient failure; retrying the phase may help.
    #[error("retryable failure: {0}")]
    Retryable(String),
    /// A failure retrying will not fix.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The call overran its wall-clock deadline and was killed.
    #[error("plugin `{plugin}` was killed after its deadline of {limit_ms} ms")]
    Timeout {
        /// Plugin name.
        plugin: String,
        /// The deadline that was enforced.
        limit_ms: u64,
    },
    /// The call tried to grow memory past its limit.
    #[error("plugin `{plugin}` exceeded its memory limit of {limit_bytes} bytes")]
    OutOfMemory {
        /// Plugin name.
        plugin: String,
        /// The limit that was enforced.
        limit_bytes: u64,
    },
    /// The call ran out of fuel (instruction budget).
    #[error("plugin `{plugin}` ran out of fuel ({fuel} units)")]
    OutOfFuel {
        /// Plugin name.
        plugin: String,
        /// The budget that was enforced.
        fuel: u64,
    },
    /// The plugin handed the host more data in one crossing (its result, or
    /// the arguments of one host call) than the host copies out of a plugin.
    #[error("plugin `{plugin}` handed the host more than {limit_bytes} bytes at once and was stopped; return fewer or smaller changes per step (split the work into more steps)")]
    TransferLimit {
        /// Plugin name.
        plugin: String,
        /// The limit that was enforced, in bytes.
        limit_bytes: u64,
    },
    /// The plugin went past one of the host's limits on what it may hand
    /// over or ask for: a title, a summary, steps or text per proposal, one
    /// stdout/stderr write, WASI handles held, random bytes per call.
    #[error("plugin `{plugin}` exceeded the limit `{limit}` ({max}): {detail}")]
    OverLimit {
        /// Plugin name.
        plugin: String,
        /// The limit, as the operator's policy file names it.
        limit: &'static str,
        /// Its value for this call.
        max: u64,
        /// What the plugin did, and what to do about it.
        detail: String,
    },
    /// The plugin trapped (panicked, hit `unreachable`, …).
    #[error("plugin `{plugin}` trapped: {message}\n{backtrace}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// The trap reason.
        message: String,
        /// The wasm backtrace, when one was captured.
        backtrace: String,
    },
    /// The plugin could not be found, loaded or instantiated.
    #[error("plugin could not be loaded: {0}")]
    Load(String),
    /// The operator's policy has an allow-list and this plugin is not on it.
    #[error("plugin `{plugin}` is not allowed by the operator's policy ({policy}), which allows only: {allowed}; ask the operator to add it to `allow` under `[plugins]`, or use an allowed plugin")]
    NotAllowed {
        /// Plugin name.
        plugin: String,
        /// Where the policy came from (its file, or the embedding's config).
        policy: String,
        /// The allowed names, comma-separated.
        allowed: String,
    },
    /// The phase was cancelled (lease lost, shutdown) while the plugin ran.
    #[error("plugin call cancelled: {0}")]
    Cancelled(String),
}

impl PluginError {
    /// Whether retrying the phase may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PluginError::Retryable(_)
                | PluginError::Lock(_)
                | PluginError::Timeout { .. }
                | PluginError::Cancelled(_)
        )
    }
}

/// A lock failure as a plugin reports it (mirrors WIT `lock-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginLockError {
    /// Another session holds the lock.
    #[error("{0}")]
    Conflict(LockConflict),
    /// A lease was lost.
    #[error("lease on `{resource}` (token {token}) expired")]
    Expired {
        /// The resource.
        resource: String,
        /// The lost token.
        token: u64,
    },
    /// The request was malformed.
    #[error("invalid lock request: {0}")]
    Invalid(String),
    /// The lock service could not be reached.
    #[error("lock service unavailable: {0}")]
    Unavailable(String),
}

/// Everything a plugin call may touch, handed over by the lifecycle.
#[derive(Clone)]
pub struct PluginContext {
    /// The plan being worked on.
    pub plan_id: String,
    /// Read-only project view (with the overlay of earlier steps in Execute).
    pub project: Arc<ProjectView>,
    /// Leases on project sub-resources, held by the running session.
    pub locks: ScopedLocks,
    /// Fires when the phase must stop (lease lost, shutdown): abandon the call.
    pub cancel: CancellationToken,
    /// Receives the plugin's progress reports
    /// ([`Progress::PluginProgress`](super::progress::Progress::PluginProgress)),
    /// when someone is listening.
    pub progress: Option<ProgressFn>,
}

/// Proposes a plan for an action (the Strategize phase).
#[async_trait]
pub trait Strategist: Send + Sync {
    /// Read the project and propose ordered steps.
    async fn strategize(
        &self,
        ctx: &PluginContext,
        action: &Action,
    ) -> Result<PlanProposal, PluginError>;
}

/// Carries out one step (the Execute phase).
#[async_trait]
pub trait Executor: Send + Sync {
    /// Run `step`, returning the changes it makes.
    async fn execute(&self, ctx: &PluginContext, step: &Step) -> Result<StepOutcome, PluginError>;
}

/// Finds strategists and executors by name. Where it looks is the
/// provider's own configuration: the plugin engine, for one, searches the
/// project plugin directory it was built with
/// ([`PluginEngine::with_project_plugins`](crate::plugins::PluginEngine::with_project_plugins)).
pub trait PluginProvider: Send + Sync {
    /// The strategist called `name`.
    fn strategist(&self, name: &str) -> Result<Arc<dyn Strategist>, PluginError>;
    /// The executor called `name`.
    fn executor(&self, name: &str) -> Result<Arc<dyn Executor>, PluginError>;
}
