//! `lockstep plan submit|approve`, `lockstep worker`, `lockstep workers list`,
//! and what `plan cancel` / `plan retry` do for a submitted plan.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use super::plan::PlanCommand;
use super::{Cli, CliError};
use crate::fleet::{self, Submission, Worker, WorkerOptions};
use crate::locks::format_ms;
use crate::visible::line;
use crate::Container;

/// `plan submit` options.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    /// The action file (TOML).
    pub action: PathBuf,
    /// The queue [default: default].
    #[arg(long, default_value = fleet::DEFAULT_QUEUE)]
    pub queue: String,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// Apply without waiting for `lockstep plan approve`.
    #[arg(long)]
    pub auto_apply: bool,
    /// Submitting again with the same key returns the first plan.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Failed attempts per phase before the plan errors for good.
    #[arg(long, default_value_t = fleet::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,
}

/// `lockstep worker` options.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Directories whose projects this worker may touch (repeatable,
    /// required): a plan on a project elsewhere is errored with the reason.
    #[arg(long = "projects-root", required = true)]
    pub projects_roots: Vec<PathBuf>,
    /// How the worker claims and runs plans.
    #[command(flatten)]
    pub tuning: WorkerTuning,
}

/// The options of a worker shared by `lockstep worker` and the in-process
/// workers of `lockstep serve`.
#[derive(Debug, Clone, Args)]
pub struct WorkerTuning {
    /// Plans a worker runs at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Queues served (repeatable) [default: default].
    #[arg(long = "queue")]
    pub queues: Vec<String>,
    /// Lease length of a claimed plan (renewed every third while a phase
    /// runs): a dead worker's plan is taken over after at most this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub ttl: Duration,
    /// Longest wait between looks at the queue (PostgreSQL also wakes on
    /// notifications).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub poll: Duration,
    /// On SIGTERM, how long running phases may take before they are
    /// interrupted.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub grace: Duration,
    /// First retry delay (doubled per failed attempt).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub backoff: Duration,
}

impl WorkerTuning {
    /// The library's options for a worker confined to `projects_roots`.
    pub fn options(&self, projects_roots: Vec<PathBuf>) -> WorkerOptions {
        WorkerOptions {
            concurrency: self.concurrency.max(1),
            queues: if self.queues.is_empty() {
                vec![fleet::DEFAULT_QUEUE.to_string()]
            } else {
                self.queues.clone()
            },
            projects_roots,
            poll: self.poll,
            grace: self.grace,
            backoff: self.backoff,
            ..WorkerOptions::default()
        }
    }
}

/// `lockstep workers …`
#[derive(Debug, Subcommand)]
pub enum WorkersCommand {
    /// Registered workers: busy, idle, lost (no heartbeat for a lease
    /// length) or stopped.
    List,
}

/// Handle cancel / retry of a submitted plan. `None`: not ours (`plan
/// submit` and `plan approve` are run by `plan::dispatch`, with
/// [`submit`] and [`approve`]).
pub async fn plan_command(
    cli: &Cli,
    container: &Container,
    cmd: &PlanCommand,
) -> Option<Result<(), CliError>> {
    Some(match cmd {
        PlanCommand::Cancel { id, .. } => match fleet::entry(container, id).await {
            Ok(e) if !e.done => cancel(cli, container, id).await,
            _ => return None,
        },
        PlanCommand::Retry { id, .. } => match fleet::entry(container, id).await {
            Ok(e) if e.done => requeue(cli, container, id).await,
            _ => return None,
        },
        _ => return None,
    })
}

pub(super) async fn submit(
    cli: &Cli,
    container: &Container,
    args: &SubmitArgs,
) -> Result<(), CliError> {
    let action = crate::lifecycle::read_action(&args.action)?;
    let submission = Submission {
        queue: args.queue.clone(),
        priority: args.priority,
        auto_apply: args.auto_apply,
        idempotency_key: args.idempotency_key.clone(),
        max_attempts: args.max_attempts,
        ..Submission::new(action, &cli.project)
    };
    let submitted = fleet::submit(container, submission).await?;
    if cli.json {
        println!(
            "{}",
            crate::visible::json(
                &json!({ "plan_id": submitted.plan_id, "existing": submitted.existing })
            )
        );
    } else if submitted.existing {
        println!("{} (submitted before with this key)", submitted.plan_id);
    } else {
        println!("{}", submitted.plan_id);
    }
    Ok(())
}

pub(super) async fn approve(cli: &Cli, container: &Container, id: &str) -> Result<(), CliError> {
    let plan = fleet::approve(container, id).await?;
    if cli.json {
        println!(
            "{}",
            crate::visible::json(
                &json!({ "plan_id": plan.id, "approved": true, "status": plan.status.to_string() })
            )
        );
    } else {
        println!(
            "plan {id} approved ({}); a worker applies it when it is executed",
            plan.status
        );
    }
    Ok(())
}

/// Cancel now if nobody runs the plan; else ask its worker to.
async fn cancel(cli: &Cli, container: &Container, id: &str) -> Result<(), CliError> {
    fleet::request_cancel(container, id).await?;
    let session = container.lifecycle();
    let now = session.cancel_plan(id).await;
    let _ = session.close().await;
    let message = match now {
        Ok(plan) => format!("plan {id} cancelled ({})", plan.status),
        Err(crate::LifecycleError::LockConflict(_)) => format!(
            "cancellation of plan {id} requested: the worker running it stops its plugin within one heartbeat and cancels it"
        ),
        Err(e) => return Err(e.into()),
    };
    if cli.json {
        println!(
            "{}",
            crate::visible::json(&json!({ "plan_id": id, "cancel_requested": true }))
        );
    } else {
        println!("{message}");
    }
    Ok(())
}

async fn requeue(cli: &Cli, container: &Container, id: &str) -> Result<(), CliError> {
    fleet::requeue(container, id).await?;
    if cli.json {
        println!(
            "{}",
            crate::visible::json(&json!({ "plan_id": id, "requeued": true }))
        );
    } else {
        println!("plan {id} is queued again; a worker retries its phase");
    }
    Ok(())
}

/// Run a worker until SIGTERM or SIGINT.
pub async fn worker(cli: &Cli, args: &WorkerArgs) -> Result<(), CliError> {
    let mut config = super::config(cli, &cli.project);
    config.lifecycle.lock_ttl = crate::locks::clamp_ttl(args.tuning.ttl);
    // A worker runs the operator's plugins only: a project's own plugins
    // need the consent of a person (`lockstep trust`), which a queue lacks.
    config.project_plugins = false;
    let container = Arc::new(Container::build(config).await?);
    let options = args.tuning.options(args.projects_roots.clone());
    let worker = Worker::new(container, options);
    eprintln!("worker {} started", worker.id());
    let stop = tokio_util::sync::CancellationToken::new();
    let signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            super::plan::wait_for_signal().await;
            stop.cancel();
        })
    };
    let summary = worker.run(stop).await;
    signal.abort();
    let summary = summary?;
    if cli.json {
        println!("{}", crate::visible::json(&summary));
    } else {
        eprintln!(
            "worker {} stopped: {} claim(s), {} phase(s) run",
            worker.id(),
            summary.claims,
            summary.phases
        );
    }
    Ok(())
}

/// `lockstep workers list`.
pub async fn workers(
    cli: &Cli,
    container: &Container,
    cmd: &WorkersCommand,
) -> Result<(), CliError> {
    let WorkersCommand::List = cmd;
    let workers = fleet::workers(container).await?;
    if cli.json {
        println!("{}", crate::visible::json(&workers));
        return Ok(());
    }
    if workers.is_empty() {
        println!("no workers have registered");
    }
    for w in workers {
        println!(
            "{:<8} {}  queues {}  running {}/{}  heartbeat {}  started {}  v{}",
            w.state,
            line(&w.id),
            line(&w.queues),
            w.running,
            w.concurrency,
            format_ms(w.heartbeat_at),
            format_ms(w.started_at),
            line(&w.version)
        );
    }
    Ok(())
}
