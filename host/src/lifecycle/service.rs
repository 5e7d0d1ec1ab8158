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
//!
//! Each phase's work is one function here (`run_strategize`, `run_execute`,
//! `run_apply`, chosen by `phase_work`); running any of them under the lock
//! is [`super::run`]'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::action::PluginRole;
use super::progress::{Progress, ProgressFn};
use super::run::{PhaseOutput, PhaseRun, Runs};
use super::{transition, ActionError, Command, LifecycleError, PluginContext, PluginProvider};
use crate::locks::{Fence, LockGuard, LockService, Owner, ScopedLocks, DEFAULT_TTL};
use crate::model::{
    Action, ChangeRecord, EventRecord, Phase, PlanProposal, PlanRecord, State, Status, StepResult,
};
use crate::store::{Attempts, StateWrite, Store};
use crate::workspace::{project_id, ChangeLimits, ProjectView, Workspace};

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
    pub(super) store: Store,
    locks: LockService,
    plugins: Arc<dyn PluginProvider>,
    pub(super) owner: Owner,
    options: LifecycleOptions,
    pub(super) shutdown: CancellationToken,
    progress: Option<ProgressFn>,
    /// The fleet worker whose attempt records this session's status
    /// writes keep, if any.
    pub(super) attempts: Option<Attempts>,
    /// Cancelled: a run of phases stops after the one running (which
    /// finishes) instead of going on to the next.
    between: CancellationToken,
}

/// The plan lock's resource.
pub(super) fn plan_resource(id: &str) -> String {
    format!("plan:{id}")
}

pub(super) fn project_resource(project_id: &str) -> String {
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
            attempts: None,
            between: CancellationToken::new(),
        }
    }

    /// This session's lock owner.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    pub(super) fn locks(&self) -> &LockService {
        &self.locks
    }

    pub(super) fn options(&self) -> &LifecycleOptions {
        &self.options
    }

    /// Wait up to `wait` for held locks (jittered backoff) instead of failing fast.
    pub fn set_lock_wait(&mut self, wait: Duration) {
        self.options.lock_wait = wait;
    }

    /// Keep a fleet worker's attempt records with this session's status
    /// writes: each phase it starts opens an attempt, each success closes
    /// it, in the same request.
    pub(crate) fn record_attempts(&mut self, log: Attempts) {
        self.attempts = Some(log);
    }

    /// Stop a run of phases after the phase running when `stop` is
    /// cancelled (the phase itself finishes; the run then ends with
    /// [`LifecycleError::Interrupted`]): a worker's graceful shutdown.
    pub(crate) fn stop_between_phases(&mut self, stop: CancellationToken) {
        self.between = stop;
    }

    /// Whether a run of phases stops before its next phase.
    pub(super) fn stops_between(&self) -> bool {
        self.shutdown.is_cancelled() || self.between.is_cancelled()
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

    pub(super) fn report(&self, p: Progress) {
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
            .map_err(ActionError::from)?;
        self.plugins
            .strategist(&action.strategy)
            .map_err(|source| ActionError::Plugin {
                role: PluginRole::Strategy,
                name: action.strategy.clone(),
                source,
            })?;
        self.plugins
            .executor(&action.executor)
            .map_err(|source| ActionError::Plugin {
                role: PluginRole::Executor,
                name: action.executor.clone(),
                source,
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
        Ok(self
            .run_phase(id, Runs::Phase(Phase::Strategize), None)
            .await?
            .0)
    }

    /// Run Execute.
    pub async fn execute_plan(&self, id: &str) -> Result<PlanRecord, LifecycleError> {
        Ok(self
            .run_phase(id, Runs::Phase(Phase::Execute), None)
            .await?
            .0)
    }

    /// Run Apply.
    pub async fn apply_plan(&self, id: &str) -> Result<ApplyReport, LifecycleError> {
        let (_, files) = self.run_phase(id, Runs::Phase(Phase::Apply), None).await?;
        Ok(ApplyReport {
            plan_id: id.to_string(),
            files,
        })
    }

    /// Run `first` and then, under the same plan lock, each phase after it
    /// up to `last` (only `first` if `last` comes before it): for a plan
    /// whose apply needs no review. Each phase's end and the next one's
    /// start are one write, fenced by the one lease, with the same events
    /// and statuses as the phases run one by one; apply's drift check and
    /// journal are as ever. A phase that fails ends the run (its phase
    /// errored, as alone); a session shut down between two phases stops
    /// after the first ([`LifecycleError::Interrupted`], the plan left in
    /// that phase's `complete`). Returns the plan as the last phase left it.
    pub async fn run_through(
        &self,
        id: &str,
        first: Phase,
        last: Phase,
    ) -> Result<PlanRecord, LifecycleError> {
        Ok(self.run_phase(id, Runs::Phase(first), Some(last)).await?.0)
    }

    /// Strategize, execute and apply a plan in strategize/queued under one
    /// plan lock ([`PlanLifecycleService::run_through`]): for a plan whose
    /// apply needs no review.
    pub async fn run_plan(&self, id: &str) -> Result<PlanRecord, LifecycleError> {
        self.run_through(id, Phase::Strategize, Phase::Apply).await
    }

    /// Re-run the phase of an errored (or interrupted) plan. The plan is
    /// read and the command decided under the plan lock, like every phase.
    pub async fn retry(&self, id: &str) -> Result<PlanRecord, LifecycleError> {
        Ok(self.run_phase(id, Runs::Retry, None).await?.0)
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

    pub(super) async fn lock(
        &self,
        resource: &str,
        operation: &str,
    ) -> Result<LockGuard, LifecycleError> {
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
    pub(super) async fn lock_apply(
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
    pub(super) async fn load_locked(
        &self,
        id: &str,
        guard: &LockGuard,
    ) -> Result<PlanRecord, LifecycleError> {
        let plan = self.store.plan(id).await?;
        self.recover_read(plan, None, guard).await
    }

    /// The plan read under its lock, recovered first if a dead session left
    /// it in `*/processing`; `journaled`: whether it has an apply journal,
    /// if known.
    pub(super) async fn recover_read(
        &self,
        plan: PlanRecord,
        journaled: Option<bool>,
        guard: &LockGuard,
    ) -> Result<PlanRecord, LifecycleError> {
        if plan.status.state != State::Processing {
            return Ok(plan);
        }
        let id = plan.id.as_str();
        // We hold the plan lock, so whoever was processing is gone.
        let fence = guard.fence();
        let journaled = match journaled {
            Some(known) => known,
            None => self.store.has_apply_journal(id).await?,
        };
        if plan.status.phase == Phase::Apply && journaled {
            self.roll_forward_interrupted(&plan, &fence).await
        } else {
            self.recover_interrupted(&plan, &fence).await
        }
    }

    /// Finish the apply a dead session left in `apply/processing` with a
    /// journal, under the apply lock: `apply/applied`, or `apply/errored`
    /// if that fails.
    async fn roll_forward_interrupted(
        &self,
        plan: &PlanRecord,
        fence: &Fence,
    ) -> Result<PlanRecord, LifecycleError> {
        let id = plan.id.as_str();
        let project = self
            .lock_apply(plan, &format!("roll forward plan {id}"))
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
            fence: Some(fence),
            reason: "interrupted apply rolled forward from the journal",
            error: message.as_deref(),
            release: &[],
            attempts: None,
        };
        let result = if outcome.is_ok() {
            self.store.finish_apply(&write).await
        } else {
            self.store.transition(&write).await
        };
        let _ = project.release().await;
        Ok(result?)
    }

    /// Move a plan a dead session left in `*/processing` to `*/errored`.
    async fn recover_interrupted(
        &self,
        plan: &PlanRecord,
        fence: &Fence,
    ) -> Result<PlanRecord, LifecycleError> {
        let t = transition(Some(plan.status), Command::Recover)?;
        let message = format!(
            "interrupted: the session running {} stopped before it finished",
            plan.status.phase
        );
        Ok(self
            .store
            .transition(&StateWrite {
                plan_id: &plan.id,
                seen_version: plan.version,
                from: plan.status,
                to: t.success,
                actor: &self.owner.id,
                fence: Some(fence),
                reason: "recovered: processing session gone",
                error: Some(&message),
                release: &[],
                attempts: None,
            })
            .await?)
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
                release: &[],
                attempts: None,
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

    /// What a plugin call of `run` gets: the plan, the project `view`, the
    /// session's leases and the phase's cancellation.
    fn context(&self, run: &PhaseRun<'_>, view: ProjectView) -> PluginContext {
        PluginContext {
            plan_id: run.plan.id.clone(),
            project: Arc::new(view),
            locks: ScopedLocks::new(
                self.locks.clone(),
                self.owner.clone(),
                &run.plan.project_id,
                run.operation,
            ),
            cancel: run.cancel.clone(),
            progress: self.progress.clone(),
        }
    }

    /// The work of `phase`: one function per phase, each returning what
    /// its completing write stores ([`PhaseOutput`]).
    pub(super) async fn phase_work(
        &self,
        phase: Phase,
        run: PhaseRun<'_>,
    ) -> Result<PhaseOutput, LifecycleError> {
        match phase {
            Phase::Strategize => self.run_strategize(run).await,
            Phase::Execute => self.run_execute(run).await,
            Phase::Apply => self.run_apply(run).await,
        }
    }

    /// Strategize: the strategist proposes steps, read-only.
    async fn run_strategize(&self, run: PhaseRun<'_>) -> Result<PhaseOutput, LifecycleError> {
        let failed = plugin_failed(Phase::Strategize);
        let plan = run.plan;
        let root = PathBuf::from(&plan.project_root);
        let strategist = self
            .plugins
            .strategist(&plan.action.strategy)
            .map_err(failed)?;
        let view = run_workspace(run.workspace, &root)
            .await?
            .view(self.options.read_cap);
        let ctx = self.context(&run, view);
        let proposal = strategist
            .strategize(&ctx, &plan.action)
            .await
            .map_err(failed)?;
        validate_proposal(&proposal)?;
        Ok(PhaseOutput::Proposal(proposal))
    }

    /// Execute: the executor runs each step; each step's changes are
    /// validated and seen by the next step through the overlay.
    async fn run_execute(&self, run: PhaseRun<'_>) -> Result<PhaseOutput, LifecycleError> {
        let failed = plugin_failed(Phase::Execute);
        let plan = run.plan;
        let root = PathBuf::from(&plan.project_root);
        let proposal = plan.proposal.clone().unwrap_or(PlanProposal {
            summary: String::new(),
            steps: vec![],
        });
        let executor = self
            .plugins
            .executor(&plan.action.executor)
            .map_err(failed)?;
        let workspace = run_workspace(run.workspace, &root).await?;
        let mut view = workspace.view(self.options.read_cap);
        let mut builder = workspace.changeset(self.options.change_limits);
        let mut results = Vec::with_capacity(proposal.steps.len());
        let total = proposal.steps.len();
        for (index, step) in proposal.steps.iter().enumerate() {
            self.report(Progress::StepStarted {
                index,
                total,
                title: step.title.clone(),
            });
            let ctx = self.context(&run, view.clone());
            let outcome = executor.execute(&ctx, step).await.map_err(failed)?;
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

    /// Apply: host code only — check, stage, journal, commit (or finish
    /// the journal of an earlier apply of this plan).
    async fn run_apply(&self, run: PhaseRun<'_>) -> Result<PhaseOutput, LifecycleError> {
        let plan = run.plan;
        let root = PathBuf::from(&plan.project_root);
        let changes = match run.changes {
            Some(read) => read,
            None => self.store.changes(&plan.id).await?,
        };
        let changes = Arc::new(changes);
        let files = changes.len();
        let limits = self.options.change_limits;
        let journaled = match run.journaled {
            Some(known) => known,
            None => self.store.has_apply_journal(&plan.id).await?,
        };
        if journaled {
            // An earlier apply of this plan renamed files and then
            // failed: finish it (the drift check would see its own
            // writes).
            roll_forward(&root, changes, limits).await?;
            return Ok(PhaseOutput::Applied(files));
        }
        let workspace = run_workspace(run.workspace, &root).await?;
        // An empty changeset writes nothing: nothing to check, stage,
        // journal or commit (a crash leaves apply/processing, recovered to
        // apply/errored and retried).
        if files == 0 {
            return Ok(PhaseOutput::Applied(0));
        }
        // Everything is validated and staged before the journal: a
        // failure up to here leaves the old tree.
        let staged = workspace
            .prepare(changes, limits)
            .await
            .map_err(LifecycleError::from)?;
        let journal = self
            .store
            .journal_apply(&plan.id, &self.owner.id, &run.fence)
            .await;
        if let Err(e) = journal {
            staged.discard().await;
            return Err(e.into());
        }
        staged.commit().await.map_err(LifecycleError::from)?;
        Ok(PhaseOutput::Applied(files))
    }
}

/// The command that runs `phase`.
pub(super) fn phase_command(phase: Phase) -> Command {
    match phase {
        Phase::Strategize => Command::Strategize,
        Phase::Execute => Command::Execute,
        Phase::Apply => Command::Apply,
    }
}

/// A plugin's failure as the failure of `phase`.
fn plugin_failed(phase: Phase) -> impl Fn(super::PluginError) -> LifecycleError + Copy {
    move |source| LifecycleError::Plugin { phase, source }
}

/// Open the project at `root` (its file work runs on the blocking pool).
async fn open_workspace(root: &Path) -> Result<Workspace, LifecycleError> {
    Workspace::open(root)
        .await
        .map_err(|source| LifecycleError::Project {
            root: root.to_path_buf(),
            source,
        })
}

/// The project at `root`, opened by the run's first phase that needs it
/// (its file work on the blocking pool) and kept in `kept` for the others.
async fn run_workspace(
    kept: &tokio::sync::OnceCell<Workspace>,
    root: &Path,
) -> Result<Workspace, LifecycleError> {
    kept.get_or_try_init(|| open_workspace(root)).await.cloned()
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
        .map_err(LifecycleError::from)
}

fn validate_proposal(p: &PlanProposal) -> Result<(), LifecycleError> {
    let invalid = |m: String| LifecycleError::Plugin {
        phase: Phase::Strategize,
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
