//! A worker: claims runnable plans, runs their phases under the claimed
//! lease, retries and rescues, and shuts down gracefully.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use sqlx::Row;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::sql::{FleetSql, CHANNEL};
use super::{read_identity, FleetError};
use crate::db::Backend;
use crate::lifecycle::{LifecycleError, PlanLifecycleService};
use crate::locks::Fence;
use crate::model::{Phase, PlanRecord, State, Status, PHASES};
use crate::store::{Attempts, StateWrite, Store, StoreError};
use crate::Container;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Plans run at once.
    pub concurrency: usize,
    /// Queues served.
    pub queues: Vec<String>,
    /// Projects this worker may touch: a plan whose project is elsewhere is
    /// errored with the reason. Empty: any project (embedders that check
    /// paths themselves).
    pub projects_roots: Vec<PathBuf>,
    /// Longest wait between looks at the queue when no notification comes
    /// (jittered ±20 %).
    pub poll: Duration,
    /// On shutdown, how long running phases may take to finish before they
    /// are interrupted.
    pub grace: Duration,
    /// First retry delay; doubled per failed attempt, at most `max_backoff`.
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 4,
            queues: vec![super::DEFAULT_QUEUE.to_string()],
            projects_roots: Vec::new(),
            poll: Duration::from_secs(1),
            grace: Duration::from_secs(30),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
        }
    }
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkerSummary {
    /// Plans claimed.
    pub claims: u64,
    /// Phases run to success.
    pub phases: u64,
}

/// A worker of the fleet; see the [module docs](super).
pub struct Worker {
    shared: Arc<Shared>,
}

struct Shared {
    container: Arc<Container>,
    options: WorkerOptions,
    sql: FleetSql,
    id: String,
    /// Where this worker runs (host, pid, user).
    holder: crate::locks::Holder,
    roots: Vec<PathBuf>,
    /// Running plans and the token that interrupts each.
    running: Mutex<HashMap<String, CancellationToken>>,
    wake: Notify,
    stats: Mutex<WorkerSummary>,
    /// Cancelled when the worker stops claiming: no new phase starts.
    stopping: CancellationToken,
}

/// A claimed plan: its lease, and the plan and its queue row as the claim
/// read them.
struct Claim {
    plan_id: String,
    fence: Fence,
    plan: PlanRecord,
    ticket: Ticket,
}

/// The queue row as a worker reads it after claiming.
#[derive(Debug, Clone)]
struct Ticket {
    identity: String,
    auto_apply: bool,
    approved: bool,
    attempts: i64,
    max_attempts: i64,
    drift_retries: i64,
    cancel_requested: bool,
    done: bool,
}

/// How many columns `Store::plan_read` decodes (the plan's and its journal
/// flag): the queue row follows them.
const PLAN_READ_COLUMNS: usize = 13;

impl Ticket {
    /// The `TICKET` columns of `r` from `at` on.
    fn at(r: &sqlx::any::AnyRow, at: usize) -> Result<Ticket, sqlx::Error> {
        Ok(Ticket {
            identity: r.try_get(at)?,
            auto_apply: r.try_get::<i64, _>(at + 1)? != 0,
            approved: r.try_get::<i64, _>(at + 2)? != 0,
            attempts: r.try_get(at + 3)?,
            max_attempts: r.try_get(at + 4)?,
            drift_retries: r.try_get(at + 5)?,
            cancel_requested: r.try_get::<i64, _>(at + 6)? != 0,
            done: r.try_get::<i64, _>(at + 7)? != 0,
        })
    }
}

/// The phase a step that failed was at, from the plan as it left it: a
/// phase that finished means the one after it could not start; `first`
/// (the step's own phase) when the plan says nothing better.
fn failed_phase(plan: &PlanRecord, first: Phase) -> Phase {
    match (plan.status.phase, plan.status.state) {
        (Phase::Strategize, State::Complete) => Phase::Execute,
        (Phase::Execute, State::Complete) => Phase::Apply,
        (phase, State::Processing | State::Errored) => phase,
        _ => first,
    }
}

/// How many phases a step that succeeded ran to success: from its first
/// to the one the plan is in (that one only if it finished). A rescue
/// that rolled an apply forward (`None`) counts as one.
fn phases_run(next: Next, before: Status, after: Option<&PlanRecord>) -> u64 {
    let Some(after) = after else { return 1 };
    let index = |phase: Phase| PHASES.iter().position(|p| *p == phase).unwrap_or(0) as u64;
    let finished = matches!(after.status.state, State::Complete | State::Applied);
    (index(after.status.phase) + u64::from(finished))
        .saturating_sub(index(next.phase(before.phase)))
}

/// What to do next with a claimed plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Strategize,
    Execute,
    Apply,
    Retry,
    Cancel,
    /// Finished (applied, cancelled, or errored past its attempts).
    Finish,
    /// Waits for approval: release the lease, leave it queued.
    Wait,
}

impl Next {
    /// The phase this step runs, for the attempt's record: a retry runs
    /// the phase the plan errored in (`current`).
    fn phase(&self, current: Phase) -> Phase {
        match self {
            Next::Strategize => Phase::Strategize,
            Next::Execute => Phase::Execute,
            Next::Apply => Phase::Apply,
            Next::Retry | Next::Cancel | Next::Finish | Next::Wait => current,
        }
    }
}

impl Worker {
    /// A worker over `container`'s database, plugins and lock service. The
    /// lease length is the container's `lifecycle.lock_ttl` (renewed every
    /// third while a phase runs).
    pub fn new(container: Arc<Container>, options: WorkerOptions) -> Self {
        let owner = crate::locks::Owner::new_session();
        let roots = options
            .projects_roots
            .iter()
            .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
            .collect();
        let sql = FleetSql::new(container.store().db().backend);
        Worker {
            shared: Arc::new(Shared {
                container,
                options,
                sql,
                id: owner.id,
                holder: owner.holder,
                roots,
                running: Mutex::new(HashMap::new()),
                wake: Notify::new(),
                stats: Mutex::new(WorkerSummary::default()),
                stopping: CancellationToken::new(),
            }),
        }
    }

    /// This worker's id (`host:pid:random`).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Claim and run plans until `stop` is cancelled; then stop claiming,
    /// give running phases the grace period, interrupt what is left (the
    /// plans stay retryable) and release every lease.
    pub async fn run(&self, stop: CancellationToken) -> Result<WorkerSummary, FleetError> {
        let shared = &self.shared;
        shared.register().await?;
        let background = CancellationToken::new();
        let heartbeat = tokio::spawn(shared.clone().heartbeat(background.clone()));
        let listener = (shared.backend() == Backend::Postgres)
            .then(|| tokio::spawn(shared.clone().listen(background.clone())));
        let mut tasks = JoinSet::new();
        let slots = Arc::new(Semaphore::new(shared.options.concurrency.max(1)));
        shared.claim_loop(&stop, &slots, &mut tasks).await;
        shared.stopping.cancel();
        shared.drain(&mut tasks).await;
        background.cancel();
        let _ = heartbeat.await;
        if let Some(l) = listener {
            let _ = l.await;
        }
        shared.unregister().await?;
        Ok(shared.stats.lock().unwrap().clone())
    }
}

impl Shared {
    fn backend(&self) -> Backend {
        self.container.store().db().backend
    }

    fn db(&self) -> &crate::db::Db {
        self.container.store().db()
    }

    fn ttl(&self) -> Duration {
        self.container.config().lifecycle.lock_ttl
    }

    async fn claim_loop(
        self: &Arc<Self>,
        stop: &CancellationToken,
        slots: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
    ) {
        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("semaphore open"),
                _ = stop.cancelled() => return,
            };
            if stop.is_cancelled() {
                return;
            }
            let session = self.container.lifecycle();
            match self.claim(&session).await {
                Ok(Some(claim)) => {
                    self.stats.lock().unwrap().claims += 1;
                    tasks.spawn(self.clone().run_claim(session, claim, permit));
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("claiming failed: {e}; trying again"),
            }
            drop(permit);
            let jitter = rand::thread_rng().gen_range(0.8..1.2);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.options.poll.mul_f64(jitter)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Wait up to the grace period for running plans, then interrupt them.
    async fn drain(&self, tasks: &mut JoinSet<()>) {
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.options.grace, all).await.is_ok() {
            return;
        }
        for token in self.running.lock().unwrap().values() {
            token.cancel();
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Claim the next runnable plan and take its lease, in one statement.
    async fn claim(&self, session: &PlanLifecycleService) -> Result<Option<Claim>, FleetError> {
        let owner = session.owner();
        let ttl_ms = i64::try_from(self.ttl().as_millis()).unwrap_or(i64::MAX);
        let query = sqlx::query(&self.sql.claim)
            .bind(self.options.queues.join(","))
            .bind(&owner.id)
            .bind(&owner.holder.host)
            .bind(owner.holder.pid)
            .bind(&owner.holder.user)
            .bind(ttl_ms);
        // On SQLite one `BEGIN IMMEDIATE` transaction sent as one request:
        // the claim cannot interleave with another worker's (in another
        // process either).
        let groups = self.db().batch(query).await?;
        // SQLite: the claim's own rows, then the claimed plan's.
        let row = groups.into_iter().last().into_iter().flatten().next();
        let Some(row) = row else {
            return Ok(None);
        };
        let resource: String = row.try_get(0)?;
        let token: i64 = row.try_get(1)?;
        let plan_id = resource.trim_start_matches("plan:").to_string();
        let plan = Store::plan_read(&row, 3)?
            .ok_or_else(|| StoreError::NotFound(plan_id.clone()))?
            .plan;
        Ok(Some(Claim {
            fence: Fence::new(resource.as_str(), owner.id.as_str(), token),
            ticket: Ticket::at(&row, 3 + PLAN_READ_COLUMNS)?,
            plan_id,
            plan,
        }))
    }

    async fn run_claim(
        self: Arc<Self>,
        mut session: PlanLifecycleService,
        claim: Claim,
        _permit: OwnedSemaphorePermit,
    ) {
        // The session's writes keep this claim's attempts; a success
        // restarts a failure count that is not zero.
        session.record_attempts(Attempts {
            worker: self.id.clone(),
            reset: claim.ticket.attempts > 0,
        });
        // A graceful shutdown lets the running phase finish, not the rest.
        session.stop_between_phases(self.stopping.clone());
        let token = session.shutdown_token();
        self.running
            .lock()
            .unwrap()
            .insert(claim.plan_id.clone(), token);
        let released = match self.drive(&session, &claim).await {
            Ok(released) => released,
            Err(e) => {
                tracing::warn!(plan = %claim.plan_id, "worker: {e}");
                false
            }
        };
        self.running.lock().unwrap().remove(&claim.plan_id);
        // Releases the claim's hold and anything the session still holds
        // (unless the plan's finishing write did), clearing the claim's
        // hint so that the next claim may take the plan at once.
        if !released {
            if let Err(e) = self.release(&claim).await {
                tracing::warn!(plan = %claim.plan_id, "releasing the lease: {e}");
            }
        }
    }

    /// Run the plan's phases while it stays runnable and the lease ours.
    /// `true`: the plan was finished and the claim's leases released with
    /// that write.
    async fn drive(
        &self,
        session: &PlanLifecycleService,
        claim: &Claim,
    ) -> Result<bool, FleetError> {
        let (mut plan, mut ticket) = (claim.plan.clone(), claim.ticket.clone());
        if let Err(reason) = self.check(&plan, &ticket).await {
            return self.refuse(&plan, claim, &reason).await.map(|()| false);
        }
        loop {
            let next = next_step(&plan, &ticket);
            match next {
                Next::Wait => return Ok(false),
                Next::Finish => return self.finish(claim).await.map(|()| true),
                Next::Cancel => {
                    if !plan.status.is_terminal() {
                        session.cancel_plan(&plan.id).await?;
                    }
                    return self.finish(claim).await.map(|()| true);
                }
                _ => {}
            }
            if self.stopping.is_cancelled() || session.shutdown_token().is_cancelled() {
                return Ok(false);
            }
            // Through apply when nothing waits for a review, else through
            // execute; the session's writes keep the attempts.
            let last = if ticket.auto_apply || ticket.approved {
                Phase::Apply
            } else {
                Phase::Execute
            };
            let before = plan.status;
            match run_next(session, &plan.id, next, last).await {
                Ok(after) => {
                    self.stats.lock().unwrap().phases += phases_run(next, before, after.as_ref());
                    match self.after_success(claim, next, after, ticket).await? {
                        Some(read) => (plan, ticket) = read,
                        None => return Ok(true),
                    }
                }
                Err(e) => {
                    let phase = next.phase(before.phase);
                    if !self
                        .after_failure(session, claim, (&ticket, phase), e)
                        .await?
                    {
                        return Ok(false);
                    }
                    (plan, ticket) = self.read(&claim.plan_id).await?;
                }
            }
        }
    }

    /// After a step that succeeded: the plan and its queue row to decide
    /// the next step from, or `None` if the step's last write applied the
    /// plan (and with that finished it in the queue and ended the claim's
    /// lease).
    async fn after_success(
        &self,
        claim: &Claim,
        next: Next,
        after: Option<PlanRecord>,
        ticket: Ticket,
    ) -> Result<Option<(PlanRecord, Ticket)>, FleetError> {
        if after.is_none() && next == Next::Retry {
            // The rescue rolled an interrupted apply forward.
            self.record_attempt(claim, Phase::Apply, "ok", None).await?;
        }
        Ok(Some(match after {
            Some(after) if after.status.state == State::Applied => return Ok(None),
            // Finished: nothing in the queue row can change that.
            Some(after) if after.status.is_terminal() => (after, ticket),
            // The queue row may have changed meanwhile (an approval, a
            // cancellation).
            _ => self.read(&claim.plan_id).await?,
        }))
    }

    /// A plan still to run must be under our roots and be the project it
    /// was submitted for.
    async fn check(&self, plan: &PlanRecord, ticket: &Ticket) -> Result<(), String> {
        if ticket.done || plan.status.is_terminal() {
            return Ok(());
        }
        let (roots, root, identity) = (
            self.roots.clone(),
            plan.project_root.clone(),
            ticket.identity.clone(),
        );
        tokio::task::spawn_blocking(move || check_project(&roots, &root, &identity))
            .await
            .unwrap_or_else(|e| Err(format!("checking the project failed: {e}")))
    }

    /// Record a phase's failure; `true` to go on with the plan.
    /// `phase`: the phase the step ran first (the attempt's phase if the
    /// failure came before any write opened one).
    async fn after_failure(
        &self,
        session: &PlanLifecycleService,
        claim: &Claim,
        (ticket, phase): (&Ticket, Phase),
        e: LifecycleError,
    ) -> Result<bool, FleetError> {
        let message = e.to_string();
        let end = |outcome: &'static str| self.end_attempt(claim, phase, outcome, Some(&message));
        match classify(&e) {
            Failure::Lost => {
                end("lost").await?;
                Ok(false)
            }
            Failure::Interrupted => {
                end("interrupted").await?;
                // A cancellation goes on (the next step cancels the plan);
                // a shutdown leaves the plan errored and retryable, for the
                // next worker at once.
                Ok(!self.stopping.is_cancelled())
            }
            Failure::Drift if ticket.drift_retries == 0 => {
                end("drift").await?;
                session.revert_plan(&claim.plan_id).await?;
                self.queue_update(claim, "drift_retries = drift_retries + 1")
                    .await?;
                Ok(true)
            }
            Failure::Busy => {
                end("busy").await?;
                self.back_off(claim, ticket, false).await?;
                Ok(false)
            }
            Failure::Retryable => {
                end("retry").await?;
                self.back_off(claim, ticket, true).await?;
                Ok(false)
            }
            Failure::Drift | Failure::Final => {
                end("failed").await?;
                self.mark_done(claim).await?;
                Ok(false)
            }
        }
    }

    /// Schedule the next attempt (counting this one if `counted`); a plan
    /// past its attempts is finished as errored.
    async fn back_off(
        &self,
        claim: &Claim,
        ticket: &Ticket,
        counted: bool,
    ) -> Result<(), FleetError> {
        let failures = ticket.attempts + i64::from(counted);
        let base = self.options.backoff.as_millis() as f64;
        let exp = 2f64.powi(i32::try_from(failures.clamp(0, 30)).unwrap_or(30) - 1);
        let jitter = rand::thread_rng().gen_range(0.75..1.25);
        let delay = (base * exp * jitter).min(self.options.max_backoff.as_millis() as f64) as i64;
        let now = self.backend().now_ms();
        let set = format!(
            "attempts = attempts + {counted}, run_after = {now} + {delay},
             done = CASE WHEN attempts + {counted} >= max_attempts THEN 1 ELSE 0 END",
            counted = i64::from(counted)
        );
        self.queue_update(claim, &set).await
    }

    async fn mark_done(&self, claim: &Claim) -> Result<(), FleetError> {
        self.queue_update(claim, "done = 1").await
    }

    /// `UPDATE plan_queue SET {set}` for the claimed plan, fenced by the
    /// claim's lease: refused (silently: the plan is another worker's now)
    /// once the lease was taken over.
    async fn queue_update(&self, claim: &Claim, set: &str) -> Result<(), FleetError> {
        let cond = claim.fence.condition(self.backend(), 2);
        let sql = format!("UPDATE plan_queue SET {set} WHERE plan_id = $1 AND {cond}");
        let n = claim
            .fence
            .bind(sqlx::query(&sql).bind(&claim.plan_id))
            .execute(&mut self.db().writer().await?)
            .await?
            .rows_affected();
        if n == 0 {
            tracing::info!(plan = %claim.plan_id, "the lease was taken over; leaving the plan to its new holder");
        }
        Ok(())
    }

    /// The plan and its queue row, in one statement.
    async fn read(&self, plan_id: &str) -> Result<(PlanRecord, Ticket), FleetError> {
        let r = sqlx::query(&self.sql.read)
            .bind(plan_id)
            .fetch_optional(self.db().reader())
            .await?
            .ok_or_else(|| FleetError::NotQueued(plan_id.to_string()))?;
        let plan = Store::plan_read(&r, 0)?
            .ok_or_else(|| StoreError::NotFound(plan_id.to_string()))?
            .plan;
        Ok((plan, Ticket::at(&r, PLAN_READ_COLUMNS)?))
    }

    /// Finish the plan in the queue (fenced) and release the claim's
    /// leases, in one request.
    async fn finish(&self, claim: &Claim) -> Result<(), FleetError> {
        let query = sqlx::query(&self.sql.finish).bind(&claim.plan_id);
        self.db().batch(claim.fence.bind(query)).await?;
        Ok(())
    }

    /// Let go of a plan not finished (see [`FleetSql::release`]).
    async fn release(&self, claim: &Claim) -> Result<(), FleetError> {
        let query = sqlx::query(&self.sql.release).bind(&claim.plan_id);
        self.db().batch(claim.fence.bind(query)).await?;
        Ok(())
    }

    /// Error the plan with `reason` (fenced) and finish it.
    async fn refuse(
        &self,
        plan: &PlanRecord,
        claim: &Claim,
        reason: &str,
    ) -> Result<(), FleetError> {
        let write = StateWrite {
            plan_id: &plan.id,
            seen_version: plan.version,
            from: plan.status,
            to: Status::new(plan.status.phase, State::Errored),
            actor: claim.fence.owner(),
            fence: Some(&claim.fence),
            reason: "refused by worker",
            error: Some(reason),
            release: &[],
            attempts: None,
        };
        match self.container.store().transition(&write).await {
            Ok(_) | Err(StoreError::Fenced { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.record_attempt(claim, plan.status.phase, "refused", Some(reason))
            .await?;
        self.mark_done(claim).await
    }

    /// An attempt that began and ended now: one that found nothing to
    /// run or could not start.
    async fn record_attempt(
        &self,
        claim: &Claim,
        phase: Phase,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<(), FleetError> {
        let now = self.backend().now_ms();
        sqlx::query(&format!(
            "INSERT INTO plan_attempts (plan_id, phase, worker, owner, token, started_at, ended_at, outcome, error)
             VALUES ($1, $2, $3, $4, $5, {now}, {now}, $6, $7)"
        ))
        .bind(&claim.plan_id)
        .bind(phase.to_string())
        .bind(&self.id)
        .bind(claim.fence.owner())
        .bind(claim.fence.token())
        .bind(outcome)
        .bind(error)
        .execute(&mut self.db().writer().await?)
        .await?;
        Ok(())
    }

    /// End the claim's open attempt (the one the failed phase's start
    /// opened) with `outcome`; if the step failed before any phase
    /// started, record it as an attempt at the phase it was to run.
    async fn end_attempt(
        &self,
        claim: &Claim,
        phase: Phase,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<(), FleetError> {
        let now = self.backend().now_ms();
        let ended = sqlx::query(&format!(
            "UPDATE plan_attempts SET ended_at = {now}, outcome = $3, error = $4
             WHERE plan_id = $1 AND token = $2 AND ended_at IS NULL"
        ))
        .bind(&claim.plan_id)
        .bind(claim.fence.token())
        .bind(outcome)
        .bind(error)
        .execute(&mut self.db().writer().await?)
        .await?
        .rows_affected();
        if ended > 0 {
            return Ok(());
        }
        // A run of phases may have failed to start a later one (apply's
        // tree lock held, say): that is the phase to record.
        let phase = match self.read(&claim.plan_id).await {
            Ok((plan, _)) => failed_phase(&plan, phase),
            Err(_) => phase,
        };
        self.record_attempt(claim, phase, outcome, error).await
    }

    async fn register(&self) -> Result<(), FleetError> {
        let now = self.backend().now_ms();
        sqlx::query(&format!(
            "INSERT INTO workers (id, host, pid, version, queues, concurrency, ttl_ms, running, started_at, heartbeat_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, {now}, {now})"
        ))
        .bind(&self.id)
        .bind(&self.holder.host)
        .bind(self.holder.pid)
        .bind(env!("CARGO_PKG_VERSION"))
        .bind(self.options.queues.join(","))
        .bind(self.options.concurrency as i64)
        .bind(self.ttl().as_millis() as i64)
        .execute(&mut self.db().writer().await?)
        .await?;
        Ok(())
    }

    async fn unregister(&self) -> Result<(), FleetError> {
        let now = self.backend().now_ms();
        sqlx::query(&format!(
            "UPDATE workers SET stopped_at = {now}, running = 0 WHERE id = $1"
        ))
        .bind(&self.id)
        .execute(&mut self.db().writer().await?)
        .await?;
        Ok(())
    }

    /// Every third of a lease: the worker's heartbeat, and cancellations
    /// asked for plans it runs (their plugins are interrupted at once).
    async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let every = self.ttl() / 3;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = self.beat().await {
                tracing::warn!("worker heartbeat failed: {e}");
            }
        }
    }

    async fn beat(&self) -> Result<(), FleetError> {
        let now = self.backend().now_ms();
        let running = self.running.lock().unwrap().len() as i64;
        sqlx::query(&format!(
            "UPDATE workers SET heartbeat_at = {now}, running = $2 WHERE id = $1"
        ))
        .bind(&self.id)
        .bind(running)
        .execute(&mut self.db().writer().await?)
        .await?;
        if running == 0 {
            return Ok(());
        }
        let cancelled: Vec<String> = sqlx::query_scalar(
            "SELECT plan_id FROM plan_queue WHERE cancel_requested = 1 AND done = 0",
        )
        .fetch_all(self.db().reader())
        .await?;
        let running = self.running.lock().unwrap();
        for id in cancelled {
            if let Some(token) = running.get(&id) {
                tracing::info!(plan = %id, "cancellation requested: interrupting");
                token.cancel();
            }
        }
        Ok(())
    }

    /// PostgreSQL: wake the claim loop on each notification. A lost
    /// notification costs at most one poll interval.
    async fn listen(self: Arc<Self>, stop: CancellationToken) {
        let url = self.container.config().database_url();
        let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("LISTEN unavailable ({e}); polling only");
                return;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!("LISTEN {CHANNEL} failed ({e}); polling only");
            return;
        }
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(_) => self.wake.notify_one(),
                    Err(e) => {
                        tracing::debug!("LISTEN connection: {e}; reconnecting");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// The project is under one of our roots and is the one submitted.
fn check_project(roots: &[PathBuf], project_root: &str, identity: &str) -> Result<(), String> {
    let path = Path::new(project_root);
    let shared_path =
        "every worker must see a project at the path it was submitted with (a shared volume)";
    let root = std::fs::canonicalize(path).map_err(|e| {
        format!(
            "project {} is not reachable on this worker ({e}): {shared_path}",
            path.display()
        )
    })?;
    if !roots.is_empty() && !roots.iter().any(|r| root.starts_with(r)) {
        let roots: Vec<_> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(format!(
            "project {} is outside this worker's --projects-root ({}); the worker does not touch it",
            root.display(),
            roots.join(", ")
        ));
    }
    match read_identity(&root) {
        Ok(Some(id)) if id == identity => Ok(()),
        Ok(found) => Err(format!(
            "the project at {} is not the one this plan was submitted for ({} says {}, the plan expects {}): {shared_path}",
            root.display(),
            super::IDENTITY_FILE,
            found.as_deref().unwrap_or("nothing"),
            identity
        )),
        Err(e) => Err(format!("{}: {e}", root.join(super::IDENTITY_FILE).display())),
    }
}

fn next_step(plan: &PlanRecord, t: &Ticket) -> Next {
    use {Phase::*, State::*};
    if t.done || plan.status.is_terminal() {
        return Next::Finish;
    }
    if t.cancel_requested {
        return Next::Cancel;
    }
    match (plan.status.phase, plan.status.state) {
        (Strategize, Queued) => Next::Strategize,
        (Strategize, Complete) => Next::Execute,
        (Execute, Complete) if t.auto_apply || t.approved => Next::Apply,
        (Execute, Complete) => Next::Wait,
        (_, Errored) if t.attempts >= t.max_attempts => Next::Finish,
        // Errored, or left in processing by a worker that died: the
        // lifecycle recovers it under our lease (an interrupted apply is
        // rolled forward from its journal, never re-executed), then runs
        // the phase again.
        (_, Errored) | (_, Processing) => Next::Retry,
        _ => Next::Finish,
    }
}

/// Run the next phase, and the phases after it through `last`; the plan
/// as the run left it, when it says.
async fn run_next(
    session: &PlanLifecycleService,
    id: &str,
    next: Next,
    last: Phase,
) -> Result<Option<PlanRecord>, LifecycleError> {
    let result = match next {
        Next::Strategize | Next::Execute | Next::Apply => {
            let first = next.phase(Phase::Strategize);
            session.run_through(id, first, last).await.map(Some)
        }
        Next::Retry => session.retry(id).await.map(Some),
        Next::Cancel | Next::Finish | Next::Wait => Ok(None),
    };
    match result {
        // A rescued apply that the recovery rolled forward is applied: the
        // retry that followed has nothing to do.
        Err(LifecycleError::InvalidTransition(t))
            if next == Next::Retry && t.from.is_some_and(|s| s.state == State::Applied) =>
        {
            Ok(None)
        }
        other => other,
    }
}

/// How a failed phase is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Our lease is gone: the plan is another worker's.
    Lost,
    /// Shutdown or cancellation stopped it.
    Interrupted,
    /// The project changed since execute.
    Drift,
    /// Another lock (an enclosing or nested project's apply) is held: try
    /// later without counting an attempt.
    Busy,
    /// Counted, retried with backoff.
    Retryable,
    /// Retrying cannot help.
    Final,
}

fn classify(e: &LifecycleError) -> Failure {
    match e {
        LifecycleError::LeaseLost { .. } | LifecycleError::LockExpired { .. } => Failure::Lost,
        LifecycleError::Store(StoreError::Fenced { .. } | StoreError::VersionConflict { .. }) => {
            Failure::Lost
        }
        LifecycleError::LockConflict(c) if c.resource.starts_with("plan:") => Failure::Lost,
        LifecycleError::LockConflict(_) => Failure::Busy,
        LifecycleError::Interrupted => Failure::Interrupted,
        LifecycleError::ApplyDrift(_) => Failure::Drift,
        LifecycleError::Plugin { source, .. } if !source.is_retryable() => Failure::Final,
        LifecycleError::Plugin { .. }
        | LifecycleError::Panicked { .. }
        | LifecycleError::Store(_)
        | LifecycleError::Lock(_)
        | LifecycleError::Project { .. }
        | LifecycleError::Apply(_) => Failure::Retryable,
        _ => Failure::Final,
    }
}
