//! `lockstep plugin new|test`: for plugin authors. Presentation only; the
//! work is in [`crate::authoring`].

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::output::{colour, diff, paint, Reported, EXIT_FAILURE};
use super::Cli;
use crate::authoring::harness::{self, HarnessError, HarnessOptions, HarnessReport, HeldLease};
use crate::authoring::{new_plugin, DifferenceKind, Lang, TreeComparison};
use crate::lifecycle::{LifecycleError, PluginError, PluginLockError};
use crate::visible::line;

/// The languages `plugin new` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LangArg {
    /// Rust, built with cargo for wasm32-wasip2.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
}

impl From<LangArg> for Lang {
    fn from(l: LangArg) -> Lang {
        match l {
            LangArg::Rust => Lang::Rust,
            LangArg::Python => Lang::Python,
            LangArg::Js => Lang::Js,
        }
    }
}

/// `plugin new` arguments.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: a-z, 0-9 and `-`, starting with a letter.
    pub name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    pub lang: LangArg,
    /// The directory to create NAME/ in.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// `plugin test` arguments. The fixture is `--project`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin under test: a .wasm file (with its .toml manifest beside
    /// it) or the name of a plugin in the plugin directories. It takes the
    /// action's strategy and executor roles, those its kind allows. Without
    /// it the action's own plugins run.
    pub plugin: Option<String>,
    /// The action file (TOML).
    #[arg(long)]
    pub action: PathBuf,
    /// Apply the changes to the copy of the project and compare the result
    /// with this directory, every file both ways; exit 1 if they differ.
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Expect no changes: exit 1 if the plugin changes any file (even to
    /// the same contents), showing each change. For a project the plugin
    /// has already fixed.
    #[arg(long, conflicts_with = "expect")]
    pub expect_unchanged: bool,
    /// Hold the plugin lease RESOURCE (`project:<id>/res:RESOURCE` of the
    /// copy) under another owner while the plugin runs, so that it meets a
    /// held lease: tests how the plugin reacts to a conflict.
    #[arg(long, value_name = "RESOURCE")]
    pub hold: Option<String>,
}

/// `plugin new`: write the project and say what to do next.
pub(crate) fn new(args: &NewArgs, json: bool) -> anyhow::Result<()> {
    let lang = Lang::from(args.lang);
    let created = new_plugin(&args.name, lang, &args.dir)?;
    if json {
        println!("{}", crate::visible::json(&created));
        return Ok(());
    }
    let dir = created.dir.display();
    println!("created the {lang} plugin `{}` in {dir}", created.name);
    for file in &created.files {
        println!("  {file}");
    }
    println!(
        "\nnext:\n  cd {dir}\n  bash build.sh       # -> dist/{name}.wasm and dist/{name}.toml\n  \
         {unit:<19} # the unit tests\n  \
         lockstep plugin test dist/{name}.wasm --project tests/fixture --action tests/action.toml --expect tests/expected\n\
         `bash test.sh` runs all three (LOCKSTEP names this binary if it is not on PATH); README.md says more.",
        name = created.name,
        unit = lang.unit_test_command(),
    );
    Ok(())
}

/// `plugin test`: run the harness, print what the plugin did and how the
/// result compares; a mismatch exits 1. When a phase fails after the
/// proposal, what ran is printed before the error.
pub(crate) async fn test(cli: &Cli, args: &TestArgs) -> anyhow::Result<()> {
    let config = super::config(cli, &cli.project);
    let report = harness::run(HarnessOptions {
        plugin: args.plugin.clone(),
        fixture: cli.project.clone(),
        action: args.action.clone(),
        expect: args.expect.clone(),
        expect_unchanged: args.expect_unchanged,
        plugin_dirs: config.plugin_dirs,
        fixture_plugins: config.project_plugins,
        plugins: config.plugins,
        hold: args.hold.clone(),
    })
    .await
    .map_err(|e| unwrap_failure(e, args, cli.json))?;
    if cli.json {
        println!("{}", crate::visible::json(&to_json(&report, args)));
    } else {
        print!("{}", describe(&report, args, colour(), false));
    }
    match &report.comparison {
        Some(c) if !c.matches() => Err(Reported {
            message: mismatch(c, args),
            code: EXIT_FAILURE,
        }
        .into()),
        _ => Ok(()),
    }
}

/// The line on stderr for a result that does not match.
fn mismatch(c: &TreeComparison, args: &TestArgs) -> String {
    let names = c
        .differences
        .iter()
        .map(|d| format!("{} ({})", line(&d.path), kind_word(d.kind, args)))
        .collect::<Vec<_>>()
        .join(", ");
    let n = files(c.differences.len());
    match &args.expect {
        Some(dir) if !args.expect_unchanged => {
            format!("the result differs from {} in {n}: {names}", dir.display())
        }
        _ => format!("expected no changes, but the plugin changes {n}: {names}"),
    }
}

/// What a difference is called: against an expected tree `missing`,
/// `extra`, `different`; against no changes `deleted`, `created`,
/// `changed`.
fn kind_word(kind: DifferenceKind, args: &TestArgs) -> &'static str {
    match (args.expect_unchanged, kind) {
        (false, kind) => kind.as_str(),
        (true, DifferenceKind::Missing) => "deleted",
        (true, DifferenceKind::Extra) => "created",
        (true, DifferenceKind::Different) => "changed",
    }
}

/// The error of a failed run, once what it carries is shown: the lease
/// held meanwhile (on stderr) and what ran before the failure (the
/// proposal; on stdout, or with `--json` as the one JSON document, with
/// the error in it). A lock conflict is passed on as the lifecycle error
/// it is, so that it is shown (and exits) as one; other failures stay
/// harness errors, without the hints about retrying a plan (the scratch
/// plan is gone).
fn unwrap_failure(e: HarnessError, args: &TestArgs, json: bool) -> anyhow::Error {
    match e {
        HarnessError::WhileHolding { held, source } => {
            if !json {
                eprintln!("{}", held_line(&held));
            }
            unwrap_failure(*source, args, json)
        }
        HarnessError::AfterProposal { report, source } => {
            let e = unwrap_failure(*source, args, json);
            if !json {
                print!("{}", describe(&report, args, colour(), true));
                return e;
            }
            let e = super::CliError::from(e);
            let mut document = to_json(&report, args);
            document["passed"] = json!(false);
            document["error"] = super::output::error_json(&e);
            println!("{}", crate::visible::json(&document));
            Reported {
                message: super::output::message(&e),
                code: super::output::exit_code(&e),
            }
            .into()
        }
        HarnessError::Plan(
            e @ (LifecycleError::LockConflict(_)
            | LifecycleError::Plugin {
                source: PluginError::Lock(PluginLockError::Conflict(_)),
                ..
            }),
        ) => e.into(),
        e => e.into(),
    }
}

fn held_line(held: &HeldLease) -> String {
    format!(
        "held `{}` under owner {} (token {}) while the plugin ran",
        line(&held.resource),
        line(&held.owner),
        held.token
    )
}

fn files(n: usize) -> String {
    format!("{n} file{}", if n == 1 { "" } else { "s" })
}

fn to_json(report: &HarnessReport, args: &TestArgs) -> serde_json::Value {
    json!({
        "passed": report.passed(),
        "plugin": report.plugin,
        "action": report.action,
        "held": report.held,
        "proposal": report.proposal,
        "steps": report.steps,
        "changes": report.changes,
        "diff": diff(&report.changes, false),
        "expect": report.comparison.as_ref().map(|c| json!({
            "dir": args.expect,
            "unchanged": args.expect_unchanged,
            "matches": c.matches(),
            "files": c.files,
            "differences": c.differences,
        })),
    })
}

/// The report as text. A `partial` report (a later phase failed) shows
/// the changes only when Execute finished.
fn describe(report: &HarnessReport, args: &TestArgs, colour: bool, partial: bool) -> String {
    let mut out = header(report);
    out.push_str(&format!("proposal: {}\n", line(&report.proposal.summary)));
    for (i, step) in report.proposal.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, line(&step.title)));
    }
    if !report.steps.is_empty() {
        out.push_str("executed:\n");
    }
    for step in &report.steps {
        out.push_str(&format!(
            "  {}: {}\n",
            line(&step.step_id),
            line(&step.summary)
        ));
    }
    if partial && report.steps.is_empty() {
        return out;
    }
    if report.changes.is_empty() {
        out.push_str("no changes\n");
    } else {
        out.push_str(&diff(&report.changes, colour));
        out.push_str(&super::output::callouts(&report.changes, colour));
    }
    if let Some(c) = &report.comparison {
        let dir = match (&args.expect, args.expect_unchanged) {
            (Some(dir), false) => Some(dir.display().to_string()),
            _ => None,
        };
        out.push_str(&comparison(c, dir.as_deref(), colour));
    }
    out
}

/// The plugin under test, the action, and the lease held.
fn header(report: &HarnessReport) -> String {
    let mut out = String::new();
    if let Some(p) = &report.plugin {
        out.push_str(&format!(
            "plugin {} {} ({}) as {}\n",
            line(&p.name),
            line(&p.version),
            line(&p.path.display().to_string()),
            match p.kind {
                crate::plugins::PluginKind::Plugin => "strategist and executor",
                crate::plugins::PluginKind::Strategist => "strategist",
                crate::plugins::PluginKind::Executor => "executor",
            }
        ));
    }
    out.push_str(&format!(
        "action `{}`: strategy {}, executor {}\n",
        line(&report.action.name),
        line(&report.action.strategy),
        line(&report.action.executor)
    ));
    if let Some(held) = &report.held {
        out.push_str(&held_line(held));
        out.push('\n');
    }
    out
}

/// How the result compares with the expected directory `dir`, or (`None`)
/// with the expectation of no changes.
fn comparison(c: &TreeComparison, dir: Option<&str>, colour: bool) -> String {
    let mut out = match (dir, c.matches()) {
        (Some(dir), true) => return format!("✓ the result matches {dir} ({})\n", files(c.files)),
        (None, true) => return format!("✓ no changes, as expected ({})\n", files(c.files)),
        (Some(dir), false) => format!("✗ the result differs from {dir} in "),
        (None, false) => "✗ expected no changes, but the plugin changes ".to_string(),
    };
    out.push_str(&format!("{} of {}:\n", c.differences.len(), files(c.files)));
    let paths: Vec<_> = c.differences.iter().map(|d| line(&d.path)).collect();
    let width = paths.iter().map(|p| p.chars().count()).max().unwrap_or(0);
    for (d, path) in c.differences.iter().zip(&paths) {
        let what = match (dir.is_some(), d.kind) {
            (true, DifferenceKind::Missing) => "missing (expected, not in the result)",
            (true, DifferenceKind::Extra) => "extra (in the result, not expected)",
            (true, DifferenceKind::Different) => "different",
            (false, DifferenceKind::Missing) => "deleted",
            (false, DifferenceKind::Extra) => "created",
            (false, DifferenceKind::Different) => "changed",
        };
        out.push_str(&format!("  {path:<width$}  {what}\n"));
    }
    for d in &c.differences {
        out.push_str(&paint(&d.diff, colour));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authoring::Difference;

    #[test]
    fn a_mismatch_names_each_file_and_shows_the_diffs() {
        let c = TreeComparison {
            files: 3,
            differences: vec![
                Difference {
                    path: "a".into(),
                    kind: DifferenceKind::Different,
                    diff: "--- expected/a\n+++ actual/a\n@@ -1 +1 @@\n-x\n+y\n".into(),
                },
                Difference {
                    path: "b".into(),
                    kind: DifferenceKind::Missing,
                    diff: "--- expected/b\n+++ /dev/null\n@@ -1 +0,0 @@\n-b\n".into(),
                },
            ],
        };
        let text = comparison(&c, Some("tests/expected"), false);
        assert!(
            text.starts_with("✗ the result differs from tests/expected in 2 of 3 files:\n  a  different\n  b  missing"),
            "{text}"
        );
        assert!(
            text.contains("-x\n+y\n") && text.contains("+++ /dev/null\n"),
            "{text}"
        );
        let ok = TreeComparison {
            files: 1,
            differences: vec![],
        };
        assert_eq!(
            comparison(&ok, Some("e"), false),
            "✓ the result matches e (1 file)\n"
        );
    }
}
