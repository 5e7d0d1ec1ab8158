//! Running a phase under the plan lock: decide it, write `*/processing`,
//! race the phase's work against the lease and the session's shutdown,
//! write the outcome. The work itself is one function per phase
//! ([`PlanLifecycleService::phase_work`]); this file is the same for all.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use super::service::phase_command;
use super::start::{settle, void, Locked, Start};
use super::{transition, Command, LifecycleError, PlanLifecycleService, Transition};
use crate::db::WriteTx;
use crate::locks::{Fence, LockGuard};
use crate::model::{ChangeRecord, Phase, PlanProposal, PlanRecord, State, Status, StepResult};
use crate::store::{Completion, PlanRead, StateWrite, StoreError, Then};
use crate::workspace::Workspace;

/// Which phase a run command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Runs {
    /// This phase (`strategize`, `execute`, `apply`).
    Phase(Phase),
    /// The phase the plan is errored in (`retry`).
    Retry,
}

impl Runs {
    /// The command, for the lock's operation.
    fn command(self) -> Command {
        match self {
            Runs::Phase(phase) => phase_command(phase),
            Runs::Retry => Command::Retry,
        }
    }
}

/// One run of a phase: the plan as read under its lock and what the
/// phase's work may use.
pub(super) struct PhaseRun<'a> {
    /// The plan, as read under the plan lock.
    pub plan: &'a PlanRecord,
    /// The lock operation (`execute plan ID`), also for plugins' leases.
    pub operation: &'a str,
    /// Fires when the phase must stop (the plan lease was lost).
    pub cancel: CancellationToken,
    /// The plan lease, for writes made during the phase (apply's journal).
    pub fence: Fence,
    /// Whether the plan has an apply journal, if known from the read.
    pub journaled: Option<bool>,
    /// The stored changeset, if read with the plan.
    pub changes: Option<Vec<ChangeRecord>>,
    /// The project, opened by the first phase of the run that needs it
    /// and kept for the phases after it (under the same plan lease).
    pub workspace: &'a OnceCell<Workspace>,
}

/// A phase decided under the plan lock.
struct Decided {
    plan: PlanRecord,
    journaled: Option<bool>,
    command: Command,
    t: Transition,
    /// The apply lock, for apply.
    project: Option<LockGuard>,
}

/// What a phase produced, stored with its completing write.
pub(super) enum PhaseOutput {
    /// Strategize: the proposal.
    Proposal(PlanProposal),
    /// Execute: the changeset and each step's summary.
    Changes(Vec<ChangeRecord>, Vec<StepResult>),
    /// Apply: how many files were written or deleted.
    Applied(usize),
}

impl PhaseOutput {
    /// What the completing write stores.
    fn completion(&self) -> Completion<'_> {
        match self {
            PhaseOutput::Proposal(p) => Completion::Proposal(p),
            PhaseOutput::Changes(changes, steps) => Completion::Changes(changes, steps),
            PhaseOutput::Applied(_) => Completion::Applied,
        }
    }

    /// How many files an apply wrote or deleted.
    fn files(&self) -> usize {
        match self {
            PhaseOutput::Applied(files) => *files,
            PhaseOutput::Proposal(_) | PhaseOutput::Changes(..) => 0,
        }
    }

    /// The changeset, for the apply that follows an execute.
    fn into_changes(self) -> Option<Vec<ChangeRecord>> {
        match self {
            PhaseOutput::Changes(changes, _) => Some(changes),
            PhaseOutput::Proposal(_) | PhaseOutput::Applied(_) => None,
        }
    }
}

/// The status writes of one phase: the same plan, actor and fence each
/// time; the last one also releases the phase's leases (`ends`).
struct Writes<'a> {
    id: &'a str,
    actor: &'a str,
    fence: Fence,
    /// The plan lease and the apply lock, released by the outcome's write.
    ends: Vec<Fence>,
    /// The fleet worker's attempt records the writes keep, if any.
    attempts: Option<&'a crate::store::Attempts>,
}

impl Writes<'_> {
    fn write<'w>(
        &'w self,
        (from, to): (Status, Status),
        seen_version: i64,
        reason: &'w str,
        error: Option<&'w str>,
    ) -> StateWrite<'w> {
        StateWrite {
            plan_id: self.id,
            seen_version,
            from,
            to,
            actor: self.actor,
            fence: Some(&self.fence),
            reason,
            error,
            release: &[],
            attempts: self.attempts,
        }
    }

    /// The outcome's write: it releases the run's leases too.
    fn last<'w>(
        &'w self,
        from_to: (Status, Status),
        seen_version: i64,
        reason: &'w str,
        error: Option<&'w str>,
    ) -> StateWrite<'w> {
        StateWrite {
            release: &self.ends,
            ..self.write(from_to, seen_version, reason, error)
        }
    }
}

/// After the outcome's write: unless it never reached the database, it
/// released the run's leases with it.
fn ended<T>(written: &Result<T, StoreError>, guards: &[Option<&LockGuard>]) {
    if !matches!(written, Err(StoreError::Database(_))) {
        for guard in guards.iter().flatten() {
            guard.released_by_write();
        }
    }
}

/// The lock operation of `command` on plan `id` (`execute plan ID`).
fn phase_operation(command: Command, id: &str) -> String {
    format!("{command} plan {id}")
}

/// The phase after `phase`, if any.
fn after(phase: Phase) -> Option<Phase> {
    match phase {
        Phase::Strategize => Some(Phase::Execute),
        Phase::Execute => Some(Phase::Apply),
        Phase::Apply => None,
    }
}

/// Release the apply lock (unless a write released it already).
async fn release_project(project: Option<LockGuard>) {
    if let Some(g) = project {
        if let Err(e) = g.release().await {
            tracing::warn!("releasing project lock: {e}; it will expire");
        }
    }
}

/// A phase started by a hand-over: decided, written at `version`, and
/// the changeset it may use (apply after execute).
struct Started {
    decided: Decided,
    version: i64,
    changes: Option<Vec<ChangeRecord>>,
}

impl PlanLifecycleService {
    /// Run a phase under the plan lock; also returns how many files an
    /// apply wrote or deleted. `through`: go on under the same lock with
    /// each phase after it up to this one (see
    /// [`PlanLifecycleService::run_through`]).
    pub(super) async fn run_phase(
        &self,
        id: &str,
        runs: Runs,
        through: Option<Phase>,
    ) -> Result<(PlanRecord, usize), LifecycleError> {
        let chained = match (runs, through) {
            (Runs::Phase(first), Some(last)) => last > first,
            (Runs::Retry, Some(_)) => true,
            (_, None) => false,
        };
        let operation = if chained {
            format!("run plan {id}")
        } else {
            format!("{} plan {id}", runs.command())
        };
        let apply = runs == Runs::Phase(Phase::Apply);
        // Strategize and execute start in the request that takes the lock.
        let start = match runs {
            Runs::Phase(Phase::Strategize | Phase::Execute) => Start::of(runs.command()),
            Runs::Phase(Phase::Apply) | Runs::Retry => None,
        };
        let locked = self.lock_and_read(id, &operation, apply, start).await?;
        let Locked {
            guard,
            read,
            tx,
            changes,
            started,
        } = locked;
        let result = self
            .run_phase_locked((read, changes, started), tx, runs, through, &guard)
            .await;
        if let Err(e) = guard.release().await {
            tracing::warn!("releasing plan lock: {e}; it will expire");
        }
        result
    }

    /// Decide the phase (the plan recovered first if need be), take the
    /// apply lock if the phase writes the project, and run it (and the
    /// phases after it `through` the one given). `tx`: the open
    /// transaction that took the plan lock (SQLite).
    async fn run_phase_locked(
        &self,
        (read, changes, started): (PlanRead, Option<Vec<ChangeRecord>>, Option<i64>),
        mut tx: Option<WriteTx>,
        runs: Runs,
        through: Option<Phase>,
        guard: &LockGuard,
    ) -> Result<(PlanRecord, usize), LifecycleError> {
        let decided = match self.decide(read, &mut tx, runs, guard).await {
            Ok(decided) => decided,
            Err(e) => {
                settle(tx, &[guard]).await;
                return Err(e);
            }
        };
        let version = match self.write_first_start(&decided, started, guard, tx).await {
            Ok(version) => version,
            Err(e) => {
                release_project(decided.project).await;
                return Err(e);
            }
        };
        self.run_started(decided, version, changes, through, guard)
            .await
    }

    /// Recover the plan if a dead session left it in `*/processing`,
    /// decide the phase and its transition, take the apply lock for apply.
    async fn decide(
        &self,
        read: PlanRead,
        tx: &mut Option<WriteTx>,
        runs: Runs,
        guard: &LockGuard,
    ) -> Result<Decided, LifecycleError> {
        let PlanRead { plan, journaled } = read;
        let (plan, journaled) = if plan.status.state == State::Processing {
            settle(tx.take(), &[guard]).await;
            (self.recover_read(plan, Some(journaled), guard).await?, None)
        } else {
            (plan, Some(journaled))
        };
        let phase = match runs {
            Runs::Phase(phase) => phase,
            Runs::Retry => {
                transition(Some(plan.status), Command::Retry)?;
                plan.status.phase
            }
        };
        let command = phase_command(phase);
        let t = transition(Some(plan.status), command)?;
        let project = match phase {
            Phase::Apply => {
                let operation = phase_operation(command, &plan.id);
                Some(self.lock_apply_in(&plan, &operation, tx, guard).await?)
            }
            Phase::Strategize | Phase::Execute => None,
        };
        Ok(Decided {
            plan,
            journaled,
            command,
            t,
            project,
        })
    }

    /// The writes of the phase `decided` under `guard`.
    fn writes<'a>(&'a self, id: &'a str, guard: &LockGuard, decided: &Decided) -> Writes<'a> {
        Writes {
            id,
            actor: &self.owner.id,
            fence: guard.fence(),
            ends: std::iter::once(guard)
                .chain(decided.project.as_ref())
                .map(LockGuard::fence)
                .collect(),
            attempts: self.attempts.as_ref(),
        }
    }

    /// The first phase's `*/processing` write (committing `tx` with it),
    /// unless it went with the lock (`started`: the version it wrote);
    /// the plan's version after it.
    async fn write_first_start(
        &self,
        decided: &Decided,
        started: Option<i64>,
        guard: &LockGuard,
        tx: Option<WriteTx>,
    ) -> Result<i64, LifecycleError> {
        let plan = &decided.plan;
        let written = match started {
            // Written with the lock, from the status read with it.
            Some(version) => Ok(version),
            None => {
                let writes = self.writes(&plan.id, guard, decided);
                let reason = format!("{} started", decided.command);
                let start =
                    writes.write((plan.status, decided.t.start), plan.version, &reason, None);
                self.write_start(&start, tx, guard, decided.project.as_ref())
                    .await
                    .map(|started| started.version)
            }
        };
        match written {
            Ok(version) => Ok(version),
            Err(refused) => Err(self.refused(&plan.id, guard, plan.version, refused).await),
        }
    }

    /// Run the started phase `decided` (written at `version`) and write its
    /// outcome; `through` a later phase, hand over to the next phase in the
    /// outcome's write instead, and so on. A session shut down between two
    /// phases stops after the first: its outcome is written, and the run
    /// ends with [`LifecycleError::Interrupted`].
    async fn run_started(
        &self,
        mut decided: Decided,
        mut version: i64,
        mut changes: Option<Vec<ChangeRecord>>,
        through: Option<Phase>,
        guard: &LockGuard,
    ) -> Result<(PlanRecord, usize), LifecycleError> {
        let workspace = OnceCell::new();
        loop {
            let (phase, plan_id) = (decided.t.start.phase, decided.plan.id.clone());
            self.report(Progress::PhaseStarted { plan_id, phase });
            let operation = phase_operation(decided.command, &decided.plan.id);
            let run = PhaseRun {
                plan: &decided.plan,
                operation: &operation,
                cancel: guard.lost(),
                fence: guard.fence(),
                journaled: decided.journaled,
                changes: changes.take(),
                workspace: &workspace,
            };
            let outcome = self.race(phase, run, guard, decided.project.as_ref()).await;
            let next = after(phase).filter(|next| through.is_some_and(|last| *next <= last));
            let mut stopped = false;
            let outcome = match (outcome, next) {
                (Ok(output), Some(next)) if !self.stops_between() => {
                    match self
                        .hand_over(&decided, version, output, next, guard)
                        .await?
                    {
                        Ok(started) => {
                            release_project(decided.project).await;
                            Started {
                                decided,
                                version,
                                changes,
                            } = started;
                            continue;
                        }
                        // The next phase could not start: this one ends.
                        Err(output) => Ok(output),
                    }
                }
                (Ok(output), Some(_)) => {
                    stopped = true;
                    Ok(output)
                }
                (outcome, _) => outcome,
            };
            let result = self.finish_phase(&decided, version, outcome, guard).await;
            release_project(decided.project).await;
            return match result {
                Ok(_) if stopped => Err(LifecycleError::Interrupted),
                other => other,
            };
        }
    }

    /// End the running phase `decided` (written at `version`) with `output`
    /// and start `next` in the same write, under the same plan lease (and,
    /// for apply, its tree lock, taken first: on SQLite in the transaction
    /// the write commits). `Ok(Err(output))`: `next` could not be decided
    /// (the caller ends the phase with `output` as usual).
    async fn hand_over(
        &self,
        decided: &Decided,
        version: i64,
        output: PhaseOutput,
        next: Phase,
        guard: &LockGuard,
    ) -> Result<Result<Started, PhaseOutput>, LifecycleError> {
        let command = phase_command(next);
        let Ok(t) = transition(Some(decided.t.success), command) else {
            return Ok(Err(output));
        };
        let plan = &decided.plan;
        let (project, mut tx) = match self.hand_over_locks(plan, next, command).await {
            Ok(locks) => locks,
            Err(e) => {
                // No apply now: the phase that ran ends as usual.
                self.finish_phase(decided, version, Ok(output), guard)
                    .await?;
                return Err(e);
            }
        };
        let writes = self.writes(&plan.id, guard, decided);
        let done_reason = format!("{} finished", decided.command);
        let done = writes.write(
            (decided.t.start, decided.t.success),
            version,
            &done_reason,
            None,
        );
        let start_reason = format!("{command} started");
        let then = Then {
            to: t.start,
            reason: &start_reason,
        };
        let written = self
            .store
            .complete(&done, output.completion(), Some(then), tx.as_mut())
            .await;
        forget_rolled_back(tx, &project);
        match written {
            Ok(read) => Ok(Ok(Started {
                version: read.plan.version,
                decided: Decided {
                    plan: read.plan,
                    journaled: Some(read.journaled),
                    command,
                    t,
                    project,
                },
                changes: output.into_changes(),
            })),
            Err(refused) => {
                release_project(project).await;
                Err(self.refused(&plan.id, guard, version, refused).await)
            }
        }
    }

    /// The locks a hand-over to `next` takes besides the plan lease: for
    /// apply, the project's tree lock (see [`Self::lock_apply_for`]).
    async fn hand_over_locks(
        &self,
        plan: &PlanRecord,
        next: Phase,
        command: Command,
    ) -> Result<(Option<LockGuard>, Option<WriteTx>), LifecycleError> {
        match next {
            Phase::Apply => {
                let operation = phase_operation(command, &plan.id);
                let (project, tx) = self.lock_apply_for(plan, &operation).await?;
                Ok((Some(project), tx))
            }
            Phase::Strategize | Phase::Execute => Ok((None, None)),
        }
    }

    /// The apply lock on `plan`'s project for a hand-over: taken in a
    /// transaction begun with it and left open for the hand-over's write
    /// if the tree is free; else the ordinary way (waiting as the session
    /// is told to, or failing with the holder).
    async fn lock_apply_for(
        &self,
        plan: &PlanRecord,
        operation: &str,
    ) -> Result<(LockGuard, Option<WriteTx>), LifecycleError> {
        let (tx, got) = self
            .locks()
            .try_tree_begin(
                &super::service::project_resource(&plan.project_id),
                &plan.project_root,
                &self.owner,
                &format!("{operation} in {}", plan.project_root),
                self.options().lock_ttl,
            )
            .await?;
        if let Some(project) = got {
            return Ok((project, Some(tx)));
        }
        settle(Some(tx), &[]).await;
        Ok((self.lock_apply(plan, operation).await?, None))
    }

    /// Write the phase's outcome (releasing its leases with it).
    async fn finish_phase(
        &self,
        decided: &Decided,
        version: i64,
        outcome: Result<PhaseOutput, LifecycleError>,
        guard: &LockGuard,
    ) -> Result<(PlanRecord, usize), LifecycleError> {
        let Decided {
            plan,
            command,
            t,
            project,
            ..
        } = decided;
        let writes = self.writes(&plan.id, guard, decided);
        let project_guard = project.as_ref();
        let written = match outcome {
            Ok(output) => {
                let reason = format!("{command} finished");
                let done = writes.last((t.start, t.success), version, &reason, None);
                let written = self
                    .store
                    .complete(&done, output.completion(), None, None)
                    .await
                    .map(|read| (read.plan, output.files()));
                ended(&written, &[Some(guard), project_guard]);
                written
            }
            Err(e) => {
                let failed = (t.start, t.failure.unwrap_or(t.start));
                return Err(self
                    .record_failure(&writes, failed, version, e, (guard, project_guard))
                    .await);
            }
        };
        match written {
            Ok(done) => Ok(done),
            Err(refused) => Err(self.refused(&plan.id, guard, version, refused).await),
        }
    }

    /// The `*/processing` write: the last request of `tx` (which it
    /// commits) if open, else a request of its own. A transaction that
    /// could not be committed took no lease.
    async fn write_start(
        &self,
        start: &StateWrite<'_>,
        tx: Option<WriteTx>,
        guard: &LockGuard,
        project_guard: Option<&LockGuard>,
    ) -> Result<PlanRecord, StoreError> {
        let Some(mut tx) = tx else {
            return self.store.transition(start).await;
        };
        let written = self.store.transition_in(&mut tx, start).await;
        if tx.is_open() {
            drop(tx);
            void(&[guard]);
            void(&project_guard.into_iter().collect::<Vec<_>>());
        }
        written
    }

    /// The phase's work, raced against the loss of the plan lease (or the
    /// apply lock's) and the session's shutdown; a panic in it is caught.
    /// Work that has finished wins over a loss or a shutdown noticed at
    /// the same time.
    async fn race(
        &self,
        phase: Phase,
        run: PhaseRun<'_>,
        guard: &LockGuard,
        project_guard: Option<&LockGuard>,
    ) -> Result<PhaseOutput, LifecycleError> {
        let lost = guard.lost();
        let project_lost = project_guard.map(|g| g.lost()).unwrap_or_default();
        let work = AssertUnwindSafe(self.phase_work(phase, run)).catch_unwind();
        tokio::select! {
            biased;
            r = work => r.unwrap_or_else(|panic| Err(LifecycleError::Panicked {
                phase,
                message: panic_message(&panic),
            })),
            _ = lost.cancelled() => Err(guard.expired_error().into()),
            _ = project_lost.cancelled() => Err(project_guard
                .map(|g| g.expired_error().into())
                .unwrap_or(LifecycleError::Interrupted)),
            _ = self.shutdown.cancelled() => Err(LifecycleError::Interrupted),
        }
    }

    /// Write the failure `e` of the phase (`*/processing` → `*/errored`)
    /// and return the error to report: `e`, or [`LifecycleError::LeaseLost`]
    /// if another session has taken the plan over meanwhile.
    async fn record_failure(
        &self,
        writes: &Writes<'_>,
        from_to: (Status, Status),
        version: i64,
        e: LifecycleError,
        (guard, project_guard): (&LockGuard, Option<&LockGuard>),
    ) -> LifecycleError {
        let message = match &e {
            LifecycleError::Interrupted => {
                "interrupted: the session was shut down during the phase".to_string()
            }
            other => other.to_string(),
        };
        let reason = format!("{} failed", phase_command(from_to.0.phase));
        let write = writes.last(from_to, version, &reason, Some(&message));
        let written = self.store.transition(&write).await;
        ended(&written, &[Some(guard), project_guard]);
        let Err(refused) = written else {
            return e;
        };
        // A lost lease means we are fenced out: if nobody took the plan
        // over, the next command recovers it.
        tracing::warn!(
            "could not record the failure of plan {} ({e}): {refused}",
            writes.id
        );
        match self.refused(writes.id, guard, version, refused).await {
            lost @ LifecycleError::LeaseLost { .. } => lost,
            _ => e,
        }
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
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// After a hand-over's write: if it rolled `tx` back, the tree lock taken
/// in that transaction never was (its guard must not release it).
fn forget_rolled_back(tx: Option<WriteTx>, project: &Option<LockGuard>) {
    if tx.as_ref().is_some_and(WriteTx::is_open) {
        drop(tx);
        void(&project.iter().collect::<Vec<_>>());
    }
}
