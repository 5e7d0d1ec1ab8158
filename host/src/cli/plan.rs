//! `lockstep plan …`

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{callouts, colour, diff};
use super::Cli;
use crate::lifecycle::progress::Progress;
use crate::lifecycle::{parse_action, ApplyReport, LifecycleError, PlanLifecycleService};
use crate::locks::format_ms;
use crate::model::PlanRecord;
use crate::model::{Phase, PlanProposal, State, Status};
use crate::visible::{block, line};
use crate::Container;

/// The plan a command worked on, attached to its error (as `anyhow`
/// context) so that the hints printed with it can name the plan.
#[derive(Debug, Clone)]
pub struct PlanId(pub String);

impl std::fmt::Display for PlanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plan {}", self.0)
    }
}

/// The plan `cmd` names, if it names one.
fn plan_of(cmd: &PlanCommand) -> Option<&str> {
    match cmd {
        PlanCommand::Strategize { id, .. }
        | PlanCommand::Execute { id, .. }
        | PlanCommand::Apply { id, .. }
        | PlanCommand::Retry { id, .. }
        | PlanCommand::Revert { id, .. }
        | PlanCommand::Cancel { id, .. }
        | PlanCommand::Approve { id } => Some(id),
        _ => None,
    }
}

/// Options of commands that take the plan lock.
#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Wait up to this long for a held lock (e.g. 30s, 5m); default: fail fast.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub lock_timeout: Option<Duration>,
}

/// `plan` subcommands.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Submit a plan as queued work for workers; prints its id at once.
    Submit(super::fleet::SubmitArgs),
    /// Approve a submitted plan for apply.
    Approve {
        /// Plan id.
        id: String,
    },
    /// Create a plan from an action file (in strategize/queued).
    New {
        /// The action file (TOML).
        action: PathBuf,
    },
    /// Run Strategize: the strategy plugin proposes steps.
    Strategize {
        /// Plan id.
        id: String,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Run Execute: the executor plugin produces the changeset.
    Execute {
        /// Plan id.
        id: String,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Run Apply: write the changeset to the project, all-or-nothing.
    Apply {
        /// Plan id.
        id: String,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Run every phase; show the diff and ask before applying.
    Run {
        /// The action file (TOML).
        action: PathBuf,
        /// Apply without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Show a plan's status and history.
    Status {
        /// Plan id.
        id: String,
    },
    /// Show a plan's proposal and changeset.
    Show {
        /// Plan id.
        id: String,
        /// Print the changeset as a unified diff.
        #[arg(long)]
        diff: bool,
    },
    /// List plans, newest first.
    List,
    /// Re-run the phase of an errored or interrupted plan.
    Retry {
        /// Plan id.
        id: String,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Discard the changeset and return to strategize/queued.
    Revert {
        /// Plan id.
        id: String,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Cancel a plan.
    Cancel {
        /// Plan id.
        id: String,
        #[command(flatten)]
        lock: LockArgs,
    },
}

/// Run a `plan` subcommand.
pub async fn run(cli: &Cli, container: &Container, cmd: &PlanCommand) -> anyhow::Result<()> {
    if let Some(result) = super::fleet::plan_command(cli, container, cmd).await {
        return result.map_err(|e| match plan_of(cmd) {
            Some(id) => e.context(PlanId(id.to_string())),
            None => e,
        });
    }
    let mut session = container.lifecycle();
    let lock_timeout = match cmd {
        PlanCommand::Strategize { lock, .. }
        | PlanCommand::Execute { lock, .. }
        | PlanCommand::Apply { lock, .. }
        | PlanCommand::Run { lock, .. }
        | PlanCommand::Retry { lock, .. }
        | PlanCommand::Revert { lock, .. }
        | PlanCommand::Cancel { lock, .. } => lock.lock_timeout,
        _ => None,
    };
    if let Some(wait) = lock_timeout {
        session.set_lock_wait(wait);
    }
    if !cli.json {
        session.set_progress(Arc::new(print_progress));
    }
    // SIGINT/SIGTERM interrupt the running phase; the plan is left errored
    // ("interrupted") and every lock of this session is released below.
    let shutdown = session.shutdown_token();
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    let result = dispatch(cli, &session, cmd)
        .await
        .map_err(|e| match plan_of(cmd) {
            Some(id) if e.downcast_ref::<PlanId>().is_none() => e.context(PlanId(id.to_string())),
            _ => e,
        });
    signals.abort();
    if let Err(e) = session.close().await {
        tracing::warn!("releasing this session's locks: {e}");
    }
    result
}

/// Wait for SIGTERM or SIGINT (Ctrl-C).
pub(super) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_progress(p: &Progress) {
    println!("{}", progress_line(p));
}

/// One line of progress, plugin text made visible.
fn progress_line(p: &Progress) -> String {
    match p {
        Progress::PhaseStarted { phase, .. } => format!("▸ {phase}"),
        Progress::StepStarted {
            index,
            total,
            title,
        } => format!("  [{}/{}] {}", index + 1, total, line(title)),
        Progress::StepFinished {
            summary, changes, ..
        } => format!(
            "        {} ({changes} change{})",
            line(summary),
            if *changes == 1 { "" } else { "s" }
        ),
        Progress::PluginProgress {
            done,
            total,
            message,
            ..
        } => match total {
            0 => format!("        … {} ({done})", line(message)),
            total => format!("        … {} ({done}/{total})", line(message)),
        },
    }
}

pub(super) fn read_action(path: &Path) -> Result<crate::model::Action, LifecycleError> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        LifecycleError::InvalidAction(format!("cannot read `{}`: {e}", path.display()))
    })?;
    parse_action(&source)
        .map_err(|e| LifecycleError::InvalidAction(format!("{}: {e}", path.display())))
}

async fn dispatch(cli: &Cli, s: &PlanLifecycleService, cmd: &PlanCommand) -> anyhow::Result<()> {
    let json = cli.json;
    match cmd {
        // Answered by the queue before a session is made (see `run`).
        PlanCommand::Submit(_) | PlanCommand::Approve { .. } => {
            anyhow::bail!("queue commands are not session commands")
        }
        PlanCommand::New { action } => {
            let plan = s.new_plan(read_action(action)?, &cli.project).await?;
            if json {
                println!("{}", crate::visible::json(&json!({ "plan_id": plan.id })));
            } else {
                println!("{}", plan.id);
            }
        }
        PlanCommand::Strategize { id, .. } => {
            let plan = s.strategize_plan(id).await?;
            print_plan(&plan, json);
            if !json {
                print_proposal(&plan);
            }
        }
        PlanCommand::Execute { id, .. } => print_plan(&s.execute_plan(id).await?, json),
        PlanCommand::Apply { id, .. } => {
            let report = s.apply_plan(id).await?;
            if json {
                println!("{}", crate::visible::json(&applied_json(&report)));
            } else {
                println!(
                    "plan {} applied: {} file(s) written",
                    report.plan_id, report.files
                );
            }
        }
        PlanCommand::Retry { id, .. } => print_plan(&s.retry(id).await?, json),
        PlanCommand::Revert { id, .. } => print_plan(&s.revert_plan(id).await?, json),
        PlanCommand::Cancel { id, .. } => print_plan(&s.cancel_plan(id).await?, json),
        PlanCommand::Status { id } => {
            let view = s.status(id).await?;
            if json {
                println!("{}", crate::visible::json(&view));
            } else {
                print_plan(&view.plan, false);
                if let Some(e) = &view.plan.error {
                    println!("error:   {}", block(e));
                }
                println!("changes: {}", view.changes);
                println!("history:");
                for e in &view.events {
                    println!(
                        "  {}  {:<22} → {:<22} {} ({})",
                        format_ms(e.at),
                        e.from.map_or("(new)".to_string(), |s| s.to_string()),
                        e.to.to_string(),
                        line(&e.reason),
                        line(&e.actor)
                    );
                }
            }
        }
        PlanCommand::Show {
            id,
            diff: with_diff,
        } => {
            let view = s.status(id).await?;
            let changes = s.changes(id).await?;
            if json {
                println!(
                    "{}",
                    crate::visible::json(
                        &json!({ "plan": view.plan, "steps": view.steps, "changes": changes, "diff": with_diff.then(|| diff(&changes, false)) })
                    )
                );
            } else {
                print_plan(&view.plan, false);
                print_proposal(&view.plan);
                for step in &view.steps {
                    println!("  {}: {}", line(&step.step_id), line(&step.summary));
                }
                if *with_diff {
                    print!("{}", diff(&changes, colour()));
                } else {
                    for c in &changes {
                        println!("  {:?} {}", c.kind, line(&c.path));
                    }
                }
                print!("{}", callouts(&changes, colour()));
            }
        }
        PlanCommand::List => {
            let plans = s.list().await?;
            if json {
                println!("{}", crate::visible::json(&plans));
            } else if plans.is_empty() {
                println!("no plans");
            } else {
                println!("{:<12}  {:<22}  {:<24}  CREATED", "ID", "STATUS", "ACTION");
                for p in plans {
                    println!(
                        "{:<12}  {:<22}  {:<24}  {}",
                        p.id,
                        p.status.to_string(),
                        line(&p.action.name),
                        format_ms(p.created_at)
                    );
                }
            }
        }
        PlanCommand::Run { action, yes, .. } => run_all(cli, s, action, *yes).await?,
    }
    Ok(())
}

fn print_plan(plan: &PlanRecord, json: bool) {
    if json {
        println!(
            "{}",
            crate::visible::json(
                &json!({ "plan_id": plan.id, "status": plan.status.to_string(), "version": plan.version, "error": plan.error })
            )
        );
    } else {
        println!(
            "plan {}  {}  ({})",
            plan.id,
            plan.status,
            line(&plan.action.name)
        );
    }
}

/// The JSON document of an applied plan, for `plan apply` and `plan run`.
fn applied_json(report: &ApplyReport) -> serde_json::Value {
    json!({
        "plan_id": report.plan_id,
        "status": Status::new(Phase::Apply, State::Applied).to_string(),
        "files": report.files,
    })
}

fn print_proposal(plan: &PlanRecord) {
    if let Some(p) = &plan.proposal {
        print!("{}", proposal_text(p));
    }
}

/// The proposal's summary and numbered step titles, plugin text made
/// visible.
fn proposal_text(p: &PlanProposal) -> String {
    let mut out = format!("proposal: {}\n", line(&p.summary));
    for (i, step) in p.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, line(&step.title)));
    }
    out
}

async fn run_all(
    cli: &Cli,
    s: &PlanLifecycleService,
    action: &Path,
    yes: bool,
) -> anyhow::Result<()> {
    let json = cli.json;
    let plan = s.new_plan(read_action(action)?, &cli.project).await?;
    if !json {
        println!(
            "plan {} created for `{}` in {}",
            plan.id,
            line(&plan.action.name),
            line(&plan.project_root)
        );
    }
    let in_plan = || PlanId(plan.id.clone());
    let plan = s.strategize_plan(&plan.id).await.with_context(in_plan)?;
    if !json {
        print_proposal(&plan);
    }
    let plan = s.execute_plan(&plan.id).await.with_context(in_plan)?;
    let changes = s.changes(&plan.id).await?;
    if !json {
        if changes.is_empty() {
            println!("nothing to change");
        } else {
            print!("{}", diff(&changes, colour()));
            print!("{}", callouts(&changes, colour()));
        }
    }
    if !yes && !changes.is_empty() {
        if json || !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "not applying without confirmation; plan {} is ready: `lockstep plan apply {}` or re-run with --yes",
                plan.id,
                plan.id
            );
        }
        print!(
            "apply {} change(s) to {}? [y/N] ",
            changes.len(),
            line(&plan.project_root)
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("not applied; plan {} stays in {}", plan.id, plan.status);
            return Ok(());
        }
    }
    let report = s.apply_plan(&plan.id).await.with_context(in_plan)?;
    if json {
        let mut body = applied_json(&report);
        body["changes"] = json!(changes.iter().map(|c| &c.path).collect::<Vec<_>>());
        println!("{}", crate::visible::json(&body));
    } else {
        println!(
            "✓ plan {} applied: {} file(s) written",
            plan.id, report.files
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Step;

    fn step(title: &str) -> Step {
        Step {
            id: "s".into(),
            title: title.into(),
            params: Default::default(),
            targets: vec![],
        }
    }

    #[test]
    fn bidi_controls_in_titles_are_made_visible() {
        // "Update docs" that a right-to-left override would show reversed
        // (or hide the tail of), and an isolate that reorders what follows.
        let p = PlanProposal {
            summary: "safe \u{2066}change\u{2069}".into(),
            steps: vec![step("Update \u{202e}sdoc\u{202c} and \u{2067}x")],
        };
        let text = proposal_text(&p);
        for c in ['\u{202e}', '\u{202c}', '\u{2066}', '\u{2067}', '\u{2069}'] {
            assert!(!text.contains(c), "{c:?} reached the terminal: {text:?}");
        }
        assert_eq!(
            text,
            "proposal: safe \\u{2066}change\\u{2069}\n  1. Update \\u{202e}sdoc\\u{202c} and \\u{2067}x\n"
        );
    }

    #[test]
    fn progress_lines_show_escape_sequences_and_newlines() {
        let line = progress_line(&Progress::StepStarted {
            index: 0,
            total: 1,
            title: "ok\u{1b}[1A\u{1b}[2K\nfake line".into(),
        });
        assert_eq!(line, "  [1/1] ok␛[1A␛[2K␊fake line");
        let line = progress_line(&Progress::StepFinished {
            index: 0,
            summary: "done\r".into(),
            changes: 1,
        });
        assert_eq!(line, "        done␍ (1 change)");
    }
}
