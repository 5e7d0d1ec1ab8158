//! `lockstep plan …`

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{callouts, colour, diff};
use super::{Cli, CliError};
use crate::lifecycle::progress::Progress;
use crate::lifecycle::{read_action, ApplyReport, PlanLifecycleService};
use crate::locks::format_ms;
use crate::model::{ChangeRecord, Phase, PlanProposal, PlanRecord, State, Status};
use crate::visible::{block, line};
use crate::Container;

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
    /// Re-run the phase of an errored or interrupted plan; with
    /// --continue, also the phases after it (as `plan run` does).
    Retry {
        /// Plan id.
        id: String,
        /// Go on with the remaining phases: execute, then show the diff
        /// and ask before applying.
        #[arg(long = "continue")]
        continue_: bool,
        /// With --continue: apply without asking.
        #[arg(long, short = 'y', requires = "continue_")]
        yes: bool,
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
pub async fn run(cli: &Cli, container: &Container, cmd: &PlanCommand) -> Result<(), CliError> {
    let in_plan = |e: CliError| match plan_of(cmd) {
        Some(id) => e.in_plan(id),
        None => e,
    };
    // Queue commands, and cancel / retry of a submitted plan.
    if let Some(result) = super::fleet::plan_command(cli, container, cmd).await {
        return result.map_err(in_plan);
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
    let result = dispatch(cli, container, &session, cmd)
        .await
        .map_err(in_plan);
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

async fn dispatch(
    cli: &Cli,
    container: &Container,
    s: &PlanLifecycleService,
    cmd: &PlanCommand,
) -> Result<(), CliError> {
    let json = cli.json;
    match cmd {
        PlanCommand::Submit(args) => super::fleet::submit(cli, container, args).await?,
        PlanCommand::Approve { id } => super::fleet::approve(cli, container, id).await?,
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
        PlanCommand::Apply { id, .. } => print_applied(&s.apply_plan(id).await?, None, json),
        PlanCommand::Retry {
            id, continue_, yes, ..
        } => retry(cli, s, id, *continue_, *yes).await?,
        PlanCommand::Revert { id, .. } => print_plan(&s.revert_plan(id).await?, json),
        PlanCommand::Cancel { id, .. } => print_plan(&s.cancel_plan(id).await?, json),
        PlanCommand::Status { id } => status(s, id, json).await?,
        PlanCommand::Show { id, diff } => show(s, id, *diff, json).await?,
        PlanCommand::List => list(s, json).await?,
        PlanCommand::Run { action, yes, .. } => run_all(cli, s, action, *yes).await?,
    }
    Ok(())
}

/// `plan status`: the plan, its error, its history.
async fn status(s: &PlanLifecycleService, id: &str, json: bool) -> Result<(), CliError> {
    let view = s.status(id).await?;
    if json {
        println!("{}", crate::visible::json(&view));
        return Ok(());
    }
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
    Ok(())
}

/// `plan show`: the proposal, the steps' summaries and the changeset (or
/// its diff).
async fn show(
    s: &PlanLifecycleService,
    id: &str,
    with_diff: bool,
    json: bool,
) -> Result<(), CliError> {
    let view = s.status(id).await?;
    let changes = s.changes(id).await?;
    if json {
        let body = json!({ "plan": view.plan, "steps": view.steps, "changes": changes, "diff": with_diff.then(|| diff(&changes, false)) });
        println!("{}", crate::visible::json(&body));
        return Ok(());
    }
    print_plan(&view.plan, false);
    print_proposal(&view.plan);
    for step in &view.steps {
        println!("  {}: {}", line(&step.step_id), line(&step.summary));
    }
    if with_diff {
        print!("{}", diff(&changes, colour()));
    } else {
        for c in &changes {
            println!("  {:?} {}", c.kind, line(&c.path));
        }
    }
    print!("{}", callouts(&changes, colour()));
    Ok(())
}

/// `plan list`: every plan, newest first.
async fn list(s: &PlanLifecycleService, json: bool) -> Result<(), CliError> {
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

/// What an apply did: with `--json` one document (for `plan run` and
/// `plan retry --continue` with the paths of `changes`), else one line.
fn print_applied(report: &ApplyReport, changes: Option<&[ChangeRecord]>, json: bool) {
    if json {
        let mut body = json!({
            "plan_id": report.plan_id,
            "status": Status::new(Phase::Apply, State::Applied).to_string(),
            "files": report.files,
        });
        if let Some(changes) = changes {
            body["changes"] = json!(changes.iter().map(|c| &c.path).collect::<Vec<_>>());
        }
        println!("{}", crate::visible::json(&body));
    } else {
        let mark = if changes.is_some() { "✓ " } else { "" };
        println!(
            "{mark}plan {} applied: {} file(s) written",
            report.plan_id, report.files
        );
    }
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

/// What a plan in `status` still needs after `plan retry`, and the
/// commands that do it; `None` once it is applied (or cannot go on).
fn next_steps(id: &str, status: Status) -> Option<String> {
    let apply = format!("`lockstep plan apply {id}` writes its changes (`lockstep plan show {id} --diff` shows them first)");
    match (status.phase, status.state) {
        (Phase::Strategize, State::Complete) => Some(format!(
            "The plan is strategized, not executed or applied: `lockstep plan execute {id}` runs Execute, then {apply}; or `lockstep plan retry {id} --continue` would have run both."
        )),
        (Phase::Execute, State::Complete) => Some(format!(
            "The plan is executed, not applied: {apply}; or `lockstep plan retry {id} --continue` would have gone on to it."
        )),
        _ => None,
    }
}

/// `plan retry`: run the errored phase again; with `--continue` also the
/// phases after it, as `plan run` does; without, say what is left.
async fn retry(
    cli: &Cli,
    s: &PlanLifecycleService,
    id: &str,
    continue_: bool,
    yes: bool,
) -> Result<(), CliError> {
    let plan = s.retry(id).await?;
    // Strategize and Execute end in `complete`, with phases after them.
    if continue_ && plan.status.state == State::Complete {
        if !cli.json {
            print_plan(&plan, false);
        }
        return carry_on(cli, s, plan, yes).await;
    }
    print_plan(&plan, cli.json);
    if !cli.json {
        if let Some(next) = next_steps(id, plan.status) {
            println!("{next}");
        }
    }
    Ok(())
}

/// `plan run`: create the plan and run strategize and execute under one
/// plan lock; with `yes` apply under it too (nothing to review), else show
/// the changeset and ask first.
async fn run_all(
    cli: &Cli,
    s: &PlanLifecycleService,
    action: &Path,
    yes: bool,
) -> Result<(), CliError> {
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
    let last = if yes { Phase::Apply } else { Phase::Execute };
    let plan = s
        .run_through(&plan.id, Phase::Strategize, last)
        .await
        .map_err(|e| CliError::from(e).in_plan(&plan.id))?;
    if !json {
        print_proposal(&plan);
    }
    if plan.status != Status::new(Phase::Apply, State::Applied) {
        return carry_on(cli, s, plan, yes).await;
    }
    let changes = s
        .changes(&plan.id)
        .await
        .map_err(|e| CliError::from(e).in_plan(&plan.id))?;
    print_changes(cli.json, &changes);
    let report = ApplyReport {
        plan_id: plan.id.clone(),
        files: changes.len(),
    };
    print_applied(&report, Some(&changes), json);
    Ok(())
}

/// The changeset as a diff (or that there is nothing to change), unless
/// the output is JSON.
fn print_changes(json: bool, changes: &[ChangeRecord]) {
    if json {
        return;
    }
    if changes.is_empty() {
        println!("nothing to change");
    } else {
        print!("{}", diff(changes, colour()));
        print!("{}", callouts(changes, colour()));
    }
}

/// Take `plan` on from where it is to applied: execute it if it is
/// strategized, show the changeset, ask (unless `yes`), apply. A plan in
/// any other status is left as it is.
async fn carry_on(
    cli: &Cli,
    s: &PlanLifecycleService,
    plan: PlanRecord,
    yes: bool,
) -> Result<(), CliError> {
    let id = plan.id.clone();
    let in_plan = |e| CliError::from(e).in_plan(&id);
    let plan = match plan.status {
        Status {
            phase: Phase::Strategize,
            state: State::Complete,
        } => s.execute_plan(&id).await.map_err(in_plan)?,
        _ => plan,
    };
    if plan.status != Status::new(Phase::Execute, State::Complete) {
        return Ok(());
    }
    let changes = s.changes(&id).await.map_err(in_plan)?;
    print_changes(cli.json, &changes);
    if !yes && !changes.is_empty() && !confirmed(cli.json, &plan, changes.len())? {
        println!("not applied; plan {} stays in {}", plan.id, plan.status);
        return Ok(());
    }
    let report = s.apply_plan(&id).await.map_err(in_plan)?;
    print_applied(&report, Some(&changes), cli.json);
    Ok(())
}

/// Ask whether to apply `count` changes to the plan's project; an error
/// when nobody can answer (`--json`, or stdin not a terminal).
fn confirmed(json: bool, plan: &PlanRecord, count: usize) -> Result<bool, CliError> {
    if json || !std::io::stdin().is_terminal() {
        return Err(CliError::NotConfirmed {
            plan: plan.id.clone(),
        });
    }
    print!(
        "apply {count} change(s) to {}? [y/N] ",
        line(&plan.project_root)
    );
    std::io::stdout().flush().map_err(CliError::Prompt)?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(CliError::Prompt)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
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
    fn after_a_retry_the_phases_left_are_named_with_the_plan() {
        let after = |phase, state| next_steps("p1", Status::new(phase, state));
        let text = after(Phase::Strategize, State::Complete).unwrap();
        assert!(
            text.contains("`lockstep plan execute p1` runs Execute")
                && text.contains("`lockstep plan apply p1` writes its changes")
                && text.contains("`lockstep plan retry p1 --continue`"),
            "{text}"
        );
        let text = after(Phase::Execute, State::Complete).unwrap();
        assert!(
            text.contains("`lockstep plan apply p1`") && !text.contains("plan execute"),
            "{text}"
        );
        assert_eq!(after(Phase::Apply, State::Applied), None);
        assert_eq!(after(Phase::Execute, State::Errored), None);
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
