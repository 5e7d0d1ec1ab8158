//! [`PlanLifecycleService`]: one session's handle on the lifecycle.
//!
//! Every command that changes a plan takes the plan lock first (apply also
//! the project's apply lock, a tree lock that no other apply on the same,
//! an enclosing or a nested project can share), reads the plan only under it, moves an interrupted
//! `*/processing` plan to `*/errored` (or rolls an interrupted apply
//! forward), validates the transition, and writes each status change
//! versioned and fenced by the lease's token. The lease is released on
//! every path: explicitly on the normal path, by the guard's drop on a
//! panic or a dropped future.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::progress::{Progress, ProgressFn};
use super::{
    transition, Action, Command, LifecycleError, Phase, PlanProposal, PluginContext,
    PluginProvider, State, Status,
};
use crate::locks::{Fence, LockGuard, LockService, Owner, ScopedLocks, DEFAULT_TTL};
use crate::model::{ChangeRecord, EventRecord, PlanRecord, StepResult};
use crate::store::{StateWrite, Store, StoreError};
use crate::workspace::{project_id, ApplyError, ChangeLimits, ProjectView, Workspace};

/// Most steps a proposal may have.
pub const MAX_STEPS: usize = 10_000;

/// Tunables of a lifecycle session.
#[derive(Debug, Clone)]
pub struct LifecycleOptions {
    /// Lease length of the plan and project locks (renewed every third).
    pub lock_ttl: Duration,
    /// How long to wait for a held lock (zero: fail fast).
    pub lock_wait: Duration,
    /// Changeset caps, the cap on originals read from the project
    /// (`max_original_bytes`) included.
    pub change_limits: ChangeLimits,
    /// Read cap of the workspace view plugins see.
    pub read_cap: u64,
}

impl Default for LifecycleOptions {
    fn default() -> Self {
        LifecycleOptions {
            lock_ttl: DEFAULT_TTL,
            lock_wait: Duration::ZERO,
            change_limits: ChangeLimits::default(),
            read_cap: crate::workspace::DEFAULT_READ_CAP,
        }
    }
}

/// What `plan status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanView {
    /// The plan.
    pub plan: PlanRecord,
    /// Its history.
    pub events: Vec<EventRecord>,
    /// Step summaries from the last Execute.
    pub steps: Vec<StepResult>,
    /// Number of entries in the stored changeset.
    pub changes: usize,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApplyReport {
    /// The plan after apply.
    pub plan_id: String,
    /// Files written or deleted.
    pub files: usize,
}

/// One session's lifecycle service; get one from
/// [`Container::lifecycle`](crate::Container::lifecycle). Each carries its
/// own lock owner id; all share the container's lock service, store and
/// plugin engine.
pub struct PlanLifecycleService {
    store: Store,
    locks: LockService,
    plugins: Arc<dyn PluginProvider>,
    owner: Owner,
    options: LifecycleOptions,
    shutdown: CancellationToken,
    progress: Option<ProgressFn>,
}

enum PhaseOutput {
    Proposal(PlanProposal),
    Changes(Vec<ChangeRecord>, Vec<StepResult>),
    /// How many files were written or deleted.
    Applied(usize),
}

fn plan_resource(id: &str) -> String {
    format!("plan:{id}")
}

fn project_resource(project_id: &str) -> String {
    format!("project:{project_id}")
}

impl PlanLifecycleService {
    pub(crate) fn new(
        store: Store,
        locks: LockService,
        plugins: Arc<dyn PluginProvider>,
        options: LifecycleOptions,
    ) -> Self {
        PlanLifecycleService {
            store,
            locks,
            plugins,
            owner: Owner::new_session(),
            options,
            shutdown: CancellationToken::new(),
            progress: None,
        }
    }

    /// This session's lock owner.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Wait up to `wait` for held locks (jittered backoff) instead of failing fast.
    pub fn set_lock_wait(&mut self, wait: Duration) {
        self.options.lock_wait = wait;
    }

    /// Receive progress events of running phases.
    pub fn set_progress(&mut self, progress: ProgressFn) {
        self.progress = Some(progress);
    }

    /// Cancel this token to interrupt the running phase (graceful
    /// shutdown): the plan is left errored ("interrupted"), retryable.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Release every lock this session holds.
    pub async fn close(&self) -> Result<u64, LifecycleError> {
        Ok(self.locks.release_all_for_owner(&self.owner.id).await?)
    }

    fn report(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(&p);
        }
    }

    /// Create a plan for `action` on the project at `project`, in strategize/queued.
    pub async fn new_plan(
        &self,
        action: Action,
        project: &Path,
    ) -> Result<PlanRecord, LifecycleError> {
        let root = Workspace::canonical_dir(project)
            .await
            .map_err(|e| LifecycleError::InvalidAction(e.to_string()))?;
        self.plugins.strategist(&action.strategy).map_err(|e| {
            LifecycleError::InvalidAction(format!("strategy `{}`: {e}", action.strategy))
        })?;
        self.plugins.executor(&action.executor).map_err(|e| {
            LifecycleError::InvalidAction(format!("executor `{}`: {e}", action.executor))
        })?;
        let t = transition(None, Command::New)?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let plan = PlanRecord {
            id,
            project_root: root.to_string_lossy().into_owned(),
            project_id: project_id(&root),
            action,
            status: t.start,
            version: 1,
            lock_token: None,
            proposal: None,
            error: None,
            created_at: 0,
            updated_at: 0,
        };
        Ok(self.store.insert_plan(&plan, &self.owner.id).await?)
    }

    /// Run Strategize.
    pub async fn strategize_plan(&self, id: &str) -> Result<PlanRecord, LifecycleError> {
        self.run_phase(id, Command::Strategize).await
    }

    /// Run Execute.
    pub async fn execute_plan(&self, id: &str) -> Result<PlanRecord, LifecycleError> {
        self.run_phase(id, Command::Execute).await
    }

    /// Run Apply.
    pub async fn apply_plan(&self, id: &str) -> Result<ApplyReport, LifecycleError> {
        let (_, files) = self.run_phase_counting(id, Command::Apply).await?;
        Ok(ApplyReport {
            plan_id: id.to_string(),
            files,
        })
    }

    /// Re-run the phase of an errored (or interrupted) plan. The plan is
    /// read and the command decided under the plan lock, like every phase.
    pub async fn retry(&self, id: &str) -> Result<PlanRecord, LifecycleError> {
        self.run_phase(id, Command::Retry).await
    }

    /// Discard the changeset and go back to strategize/queued.
    pub async fn revert_plan(&self, id: &str) -> Result<PlanRecord, LifecycleError> {
        self.simple_command(id, Command::Revert).await
    }

    /// Cancel the plan.
    pub async fn cancel_plan(&self, id: &str) -> Result<PlanRecord, LifecycleError> {
        self.simple_command(id, Command::Cancel).await
    }

    /// The plan with its history. A plan in `*/processing` whose lock is
    /// free is recovered first, so the status shown is the truth.
    pub async fn status(&self, id: &str) -> Result<PlanView, LifecycleError> {
        let mut plan = self.store.plan(id).await?;
        if plan.status.state == State::Processing {
            let op = format!("recover plan {id}");
            if let Ok(guard) = self
                .locks
                .lock(
                    &plan_resource(id),
                    &self.owner,
                    &op,
                    self.options.lock_ttl,
                    Duration::ZERO,
                )
                .await
            {
                let recovered = self.load_locked(id, &guard).await;
                let _ = guard.release().await;
                plan = recovered?;
            }
        }
        Ok(PlanView {
            events: self.store.events(id).await?,
            steps: self.store.step_results(id).await?,
            changes: self.store.change_count(id).await?,
            plan,
        })
    }

    /// Every plan, newest first.
    pub async fn list(&self) -> Result<Vec<PlanRecord>, LifecycleError> {
        Ok(self.store.list_plans().await?)
    }

    /// The plan's stored changeset.
    pub async fn changes(&self, id: &str) -> Result<Vec<ChangeRecord>, LifecycleError> {
        self.store.plan(id).await?;
        Ok(self.store.changes(id).await?)
    }

    async fn lock(&self, resource: &str, operation: &str) -> Result<LockGuard, LifecycleError> {
        Ok(self
            .locks
            .lock(
                resource,
                &self.owner,
                operation,
                self.options.lock_ttl,
                self.options.lock_wait,
            )
            .await?)
    }

    /// The apply lock on the plan's project: a tree lock, so it excludes
    /// every other apply (or roll-forward) on the same project, on a project
    /// nested in it or on one containing it — this session's own included.
    async fn lock_apply(
        &self,
        plan: &PlanRecord,
        operation: &str,
    ) -> Result<LockGuard, LifecycleError> {
        Ok(self
            .locks
            .lock_tree(
                &project_resource(&plan.project_id),
                &plan.project_root,
                &self.owner,
                &format!("{operation} in {}", plan.project_root),
                self.options.lock_ttl,
                self.options.lock_wait,
            )
            .await?)
    }

    /// Load a plan under its lock, recovering it if a dead session left it
    /// in `*/processing`.
    async fn load_locked(&self, id: &str, guard: &LockGuard) -> Result<PlanRecord, LifecycleError> {
        let plan = self.store.plan(id).await?;
        if plan.status.state != State::Processing {
            return Ok(plan);
        }
        // We hold the plan lock, so whoever was processing is gone.
        let fence = guard.fence();
        let fence = Some(&fence);
        if plan.status.phase == Phase::Apply && self.store.has_apply_journal(id).await? {
            let project = self
                .lock_apply(&plan, &format!("roll forward plan {id}"))
                .await?;
            let changes = self.store.changes(id).await?;
            let outcome = roll_forward(
                Path::new(&plan.project_root),
                Arc::new(changes),
                self.options.change_limits,
            )
            .await;
            let to = if outcome.is_ok() {
                Status::new(Phase::Apply, State::Applied)
            } else {
                Status::new(Phase::Apply, State::Errored)
            };
            let message = outcome
                .as_ref()
                .err()
                .map(|e| format!("roll-forward failed: {e}"));
            let write = StateWrite {
                plan_id: id,
                seen_version: plan.version,
                from: plan.status,
                to,
                actor: &self.owner.id,
                fence,
                reason: "interrupted apply rolled forward from the journal",
                error: message.as_deref(),
            };
            let result = if outcome.is_ok() {
                self.store.finish_apply(&write).await
            } else {
                self.store.transition(&write).await
            };
            let _ = project.release().await;
            Ok(result?)
        } else {
            let t = transition(Some(plan.status), Command::Recover)?;
            let message = format!(
                "interrupted: the session running {} stopped before it finished",
                plan.status.phase
            );
            Ok(self
                .store
                .transition(&StateWrite {
                    plan_id: id,
                    seen_version: plan.version,
                    from: plan.status,
                    to: t.success,
                    actor: &self.owner.id,
                    fence,
                    reason: "recovered: processing session gone",
                    error: Some(&message),
                })
                .await?)
        }
    }

    async fn simple_command(
        &self,
        id: &str,
        command: Command,
    ) -> Result<PlanRecord, LifecycleError> {
        let guard = self
            .lock(&plan_resource(id), &format!("{command} plan {id}"))
            .await?;
        let result = async {
            let plan = self.load_locked(id, &guard).await?;
            let t = transition(Some(plan.status), command)?;
            let write = StateWrite {
                plan_id: id,
                seen_version: plan.version,
                from: plan.status,
                to: t.success,
                actor: &self.owner.id,
                fence: Some(&guard.fence()),
                reason: if command == Command::Revert {
                    "reverted: changeset discarded"
                } else {
                    "cancelled"
                },
                error: None,
            };
            let plan = if command == Command::Revert {
                self.store.revert(&write).await?
            } else {
                self.store.transition(&write).await?
            };
            Ok::<_, LifecycleError>(plan)
        }
        .await;
        if let Err(e) = guard.release().await {
            tracing::warn!("releasing plan lock: {e}");
        }
        result
    }

    async fn run_phase(&self, id: &str, command: Command) -> Result<PlanRecord, LifecycleError> {
        Ok(self.run_phase_counting(id, command).await?.0)
    }

    /// Run a phase; also returns how many files an apply wrote or deleted.
    async fn run_phase_counting(
        &self,
        id: &str,
        command: Command,
    ) -> Result<(PlanRecord, usize), LifecycleError> {
        let operation = format!("{command} plan {id}");
        let guard = self.lock(&plan_resource(id), &operation).await?;
        let result = self.run_phase_locked(id, command, &operation, &guard).await;
        if let Err(e) = guard.release().await {
            tracing::warn!("releasing plan lock: {e}; it will expire");
        }
        result
    }

    async fn run_phase_locked(
        &self,
        id: &str,
        command: Command,
        operation: &str,
        guard: &LockGuard,
    ) -> Result<(PlanRecord, usize), LifecycleError> {
        let plan = self.load_locked(id, guard).await?;
        let command = match command {
            // `retry` runs whichever phase the plan is errored in.
            Command::Retry => {
                transition(Some(plan.status), Command::Retry)?;
                phase_command(plan.status.phase)
            }
            other => other,
        };
        let t = transition(Some(plan.status), command)?;
        let project_guard = match command {
            Command::Apply => Some(self.lock_apply(&plan, operation).await?),
            _ => None,
        };
        let fence = guard.fence();
        let fence = Some(&fence);
        let write = |from, to, seen_version, reason, error| StateWrite {
            plan_id: id,
            seen_version,
            from,
            to,
            actor: &self.owner.id,
            fence,
            reason,
            error,
        };
        let start_reason = format!("{command} started");
        let version = match self
            .store
            .transition(&write(
                plan.status,
                t.start,
                plan.version,
                &start_reason,
                None,
            ))
            .await
        {
            Ok(started) => started.version,
            Err(refused) => return Err(self.refused(id, guard, plan.version, refused).await),
        };
        self.report(Progress::PhaseStarted {
            plan_id: id.to_string(),
            phase: t.start.phase,
        });

        let lost = guard.lost();
        let project_lost = project_guard.as_ref().map(|g| g.lost()).unwrap_or_default();
        let work = AssertUnwindSafe(self.phase_work(
            &plan,
            command,
            operation,
            lost.clone(),
            guard.fence(),
        ))
        .catch_unwind();
        let outcome = tokio::select! {
            r = work => r.unwrap_or_else(|panic| Err(LifecycleError::Panicked {
                phase: phase_name(command),
                message: panic_message(&panic),
            })),
            _ = lost.cancelled() => Err(guard.expired_error().into()),
            _ = project_lost.cancelled() => Err(project_guard.as_ref().map(|g| g.expired_error().into()).unwrap_or(LifecycleError::Interrupted)),
            _ = self.shutdown.cancelled() => Err(LifecycleError::Interrupted),
        };

        let done_reason = format!("{command} finished");
        let result = match outcome {
            Ok(output) => {
                let w = write(t.start, t.success, version, &done_reason, None);
                let written = match output {
                    PhaseOutput::Proposal(p) => {
                        self.store.complete_strategize(&w, &p).await.map(|p| (p, 0))
                    }
                    PhaseOutput::Changes(changes, steps) => self
                        .store
                        .complete_execute(&w, &changes, &steps)
                        .await
                        .map(|p| (p, 0)),
                    PhaseOutput::Applied(files) => {
                        self.store.finish_apply(&w).await.map(|p| (p, files))
                    }
                };
                match written {
                    Ok(done) => Ok(done),
                    Err(refused) => Err(self.refused(id, guard, version, refused).await),
                }
            }
            Err(e) => {
                let message = match &e {
                    LifecycleError::Interrupted => {
                        "interrupted: the session was shut down during the phase".to_string()
                    }
                    other => other.to_string(),
                };
                let failure = t.failure.unwrap_or(t.start);
                let failed_reason = format!("{command} failed");
                match self
                    .store
                    .transition(&write(
                        t.start,
                        failure,
                        version,
                        &failed_reason,
                        Some(&message),
                    ))
                    .await
                {
                    Ok(_) => Err(e),
                    Err(refused) => {
                        // A lost lease means we are fenced out: if nobody
                        // took the plan over, the next command recovers it.
                        tracing::warn!(
                            "could not record the failure of plan {id} ({e}): {refused}"
                        );
                        match self.refused(id, guard, version, refused).await {
                            lost @ LifecycleError::LeaseLost { .. } => Err(lost),
                            _ => Err(e),
                        }
                    }
                }
            }
        };
        if let Some(g) = project_guard {
            if let Err(e) = g.release().await {
                tracing::warn!("releasing project lock: {e}; it will expire");
            }
        }
        result
    }

    /// The error for a write of this session's phase (made under `guard`,
    /// after this session last wrote the plan at `version`) that the
    /// database refused. If another session has written the plan since,
    /// the lease was lost to it: [`LifecycleError::LeaseLost`] with the
    /// plan's status now. Otherwise the refusal itself.
    async fn refused(
        &self,
        id: &str,
        guard: &LockGuard,
        version: i64,
        refused: StoreError,
    ) -> LifecycleError {
        if matches!(
            refused,
            StoreError::Fenced { .. } | StoreError::VersionConflict { .. }
        ) {
            match self.store.plan(id).await {
                Ok(now) if now.version != version => {
                    return LifecycleError::LeaseLost {
                        resource: guard.resource().to_string(),
                        token: guard.token(),
                        current: now.status,
                        source: refused,
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("reading plan {id} after a refused write: {e}"),
            }
        }
        refused.into()
    }

    fn context(
        &self,
        plan: &PlanRecord,
        view: ProjectView,
        operation: &str,
        cancel: CancellationToken,
    ) -> PluginContext {
        PluginContext {
            plan_id: plan.id.clone(),
            project: Arc::new(view),
            locks: ScopedLocks::new(
                self.locks.clone(),
                self.owner.clone(),
                &plan.project_id,
                operation,
            ),
            cancel,
            progress: self.progress.clone(),
        }
    }

    async fn phase_work(
        &self,
        plan: &PlanRecord,
        command: Command,
        operation: &str,
        cancel: CancellationToken,
        fence: Fence,
    ) -> Result<PhaseOutput, LifecycleError> {
        let root = PathBuf::from(&plan.project_root);
        let read_cap = self.options.read_cap;
        match command {
            Command::Strategize => {
                let strategist =
                    self.plugins
                        .strategist(&plan.action.strategy)
                        .map_err(|source| LifecycleError::Plugin {
                            phase: "strategize",
                            source,
                        })?;
                let view = open_workspace(&root).await?.view(read_cap);
                let ctx = self.context(plan, view, operation, cancel);
                let proposal =
                    strategist
                        .strategize(&ctx, &plan.action)
                        .await
                        .map_err(|source| LifecycleError::Plugin {
                            phase: "strategize",
                            source,
                        })?;
                validate_proposal(&proposal)?;
                Ok(PhaseOutput::Proposal(proposal))
            }
            Command::Execute => {
                let proposal = plan.proposal.clone().unwrap_or(PlanProposal {
                    summary: String::new(),
                    steps: vec![],
                });
                let executor = self
                    .plugins
                    .executor(&plan.action.executor)
                    .map_err(|source| LifecycleError::Plugin {
                        phase: "execute",
                        source,
                    })?;
                let workspace = open_workspace(&root).await?;
                let mut view = workspace.view(read_cap);
                let mut builder = workspace.changeset(self.options.change_limits);
                let mut results = Vec::with_capacity(proposal.steps.len());
                let total = proposal.steps.len();
                for (index, step) in proposal.steps.iter().enumerate() {
                    self.report(Progress::StepStarted {
                        index,
                        total,
                        title: step.title.clone(),
                    });
                    let ctx = self.context(plan, view.clone(), operation, cancel.clone());
                    let outcome = executor.execute(&ctx, step).await.map_err(|source| {
                        LifecycleError::Plugin {
                            phase: "execute",
                            source,
                        }
                    })?;
                    let count = outcome.changes.len();
                    let normalised = builder.add(outcome.changes).await?;
                    view.overlay_changes(normalised);
                    self.report(Progress::StepFinished {
                        index,
                        summary: outcome.summary.clone(),
                        changes: count,
                    });
                    results.push(StepResult {
                        step_id: step.id.clone(),
                        summary: outcome.summary,
                    });
                }
                Ok(PhaseOutput::Changes(builder.finish(), results))
            }
            Command::Apply => {
                let changes = Arc::new(self.store.changes(&plan.id).await?);
                let files = changes.len();
                let limits = self.options.change_limits;
                if self.store.has_apply_journal(&plan.id).await? {
                    // An earlier apply of this plan renamed files and then
                    // failed: finish it (the drift check would see its own
                    // writes).
                    roll_forward(&root, changes, limits).await?;
                    return Ok(PhaseOutput::Applied(files));
                }
                // Everything is validated and staged before the journal: a
                // failure up to here leaves the old tree.
                let staged = open_workspace(&root)
                    .await?
                    .prepare(changes, limits)
                    .await
                    .map_err(|e| match e {
                        ApplyError::Drift(d) => LifecycleError::ApplyDrift(d),
                        e => LifecycleError::Io(e.to_string()),
                    })?;
                if let Err(e) = self
                    .store
                    .journal_apply(&plan.id, &self.owner.id, &fence)
                    .await
                {
                    staged.discard().await;
                    return Err(e.into());
                }
                staged
                    .commit()
                    .await
                    .map_err(|e| LifecycleError::Io(e.to_string()))?;
                Ok(PhaseOutput::Applied(files))
            }
            other => unreachable!("{other} is not a phase"),
        }
    }
}

/// The command that runs `phase`.
fn phase_command(phase: Phase) -> Command {
    match phase {
        Phase::Strategize => Command::Strategize,
        Phase::Execute => Command::Execute,
        Phase::Apply => Command::Apply,
    }
}

/// Open the project at `root` (its file work runs on the blocking pool).
async fn open_workspace(root: &Path) -> Result<Workspace, LifecycleError> {
    Workspace::open(root)
        .await
        .map_err(|e| LifecycleError::Io(format!("project `{}`: {e}", root.display())))
}

/// Finish an interrupted apply of `changes` to the project at `root`,
/// every path validated again (they come back from the database).
async fn roll_forward(
    root: &Path,
    changes: Arc<Vec<ChangeRecord>>,
    limits: ChangeLimits,
) -> Result<usize, LifecycleError> {
    open_workspace(root)
        .await?
        .roll_forward(changes, limits)
        .await
        .map_err(|e| LifecycleError::Io(e.to_string()))
}

fn phase_name(command: Command) -> &'static str {
    match command {
        Command::Strategize => "strategize",
        Command::Execute => "execute",
        Command::Apply => "apply",
        _ => "command",
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn validate_proposal(p: &PlanProposal) -> Result<(), LifecycleError> {
    let invalid = |m: String| LifecycleError::Plugin {
        phase: "strategize",
        source: super::PluginError::InvalidInput(m),
    };
    if p.steps.len() > MAX_STEPS {
        return Err(invalid(format!(
            "the proposal has {} steps; the limit is {MAX_STEPS}",
            p.steps.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for s in &p.steps {
        if s.id.is_empty() {
            return Err(invalid("a step has an empty id".into()));
        }
        if !seen.insert(s.id.as_str()) {
            return Err(invalid(format!("step id `{}` appears twice", s.id)));
        }
    }
    Ok(())
}
