//! `lockstep plugin test`: a plugin run against a fixture project, with
//! nothing for its author to set up.
//!
//! The fixture is copied to a scratch directory and a plan is driven
//! through the real lifecycle on a scratch SQLite database beside it
//! (Strategize, Execute, and with an expectation Apply), so the plugin sees
//! exactly what it sees in production: the sandbox, the limits, the
//! workspace view and the changeset checks. The fixture itself is never
//! touched, and the scratch directory is removed afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::tree::{self, Difference, DifferenceKind, TreeComparison};
use crate::config::Config;
use crate::lifecycle::{parse_action, LifecycleError, PlanLifecycleService, PluginError};
use crate::locks::{LockError, LockGuard, LockService, Owner, ScopedLocks};
use crate::model::{Action, PlanProposal};
use crate::model::{ChangeKind, ChangeRecord, StepResult};
use crate::plugins::{PluginEngine, PluginKind, PluginsConfig, Role};
use crate::workspace::unified_diff;
use crate::Container;

/// What [`run`] runs.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// The plugin under test: the path of a `.wasm` component (its `.toml`
    /// manifest beside it) or the name of a plugin in `plugin_dirs`. It
    /// replaces the action's strategy and executor, for each role its kind
    /// allows. `None` runs the action's own plugins.
    pub plugin: Option<String>,
    /// The fixture project; it is copied, never changed.
    pub fixture: PathBuf,
    /// The action file.
    pub action: PathBuf,
    /// A directory the result must equal: the changes are applied to the
    /// copy, which is then compared with it.
    pub expect: Option<PathBuf>,
    /// Expect no changes: the run does not pass if the plugin changes any
    /// file (even to the same contents); nothing is applied. For a plugin
    /// run on a project it has already fixed (idempotency). Takes
    /// precedence over `expect`.
    pub expect_unchanged: bool,
    /// Where plugins are found by name (the operator's directories).
    pub plugin_dirs: Vec<PathBuf>,
    /// Also search the fixture's own `FIXTURE/.lockstep/plugins` first, for
    /// plugins the user has trusted there (`lockstep trust FIXTURE`).
    pub fixture_plugins: bool,
    /// Limits, compiled-component cache, instance allocation.
    pub plugins: PluginsConfig,
    /// A plugin lease name (`R` for `project:<id>/res:R`) to hold under
    /// another owner while the plugin runs, so that the plugin meets a
    /// held lease: how it reacts to a conflict can be tested.
    pub hold: Option<String>,
}

/// The lease the harness held while the plugin ran (`--hold`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldLease {
    /// The full resource name (`project:<id>/res:<name>`).
    pub resource: String,
    /// The owner it was held under (not the plugin's session).
    pub owner: String,
    /// The operation recorded with it.
    pub operation: String,
    /// Its fencing token.
    pub token: i64,
}

/// The operation recorded with a lease held by `--hold`.
pub const HOLD_OPERATION: &str = "held by `lockstep plugin test --hold`";

/// The plugin given on the command line, as it was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginUnderTest {
    /// Its manifest's name.
    pub name: String,
    /// Its manifest's version.
    pub version: String,
    /// The component.
    pub path: PathBuf,
    /// Its manifest's kind: the roles it was put in.
    pub kind: PluginKind,
}

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct HarnessReport {
    /// The plugin given on the command line, if any.
    pub plugin: Option<PluginUnderTest>,
    /// The action as it ran (with the plugin under test in its roles).
    pub action: Action,
    /// The strategist's proposal.
    pub proposal: PlanProposal,
    /// The executor's summary of each step.
    pub steps: Vec<StepResult>,
    /// The changeset, with each target's contents before and after.
    pub changes: Vec<ChangeRecord>,
    /// The result compared with the expected tree, when one was given.
    pub comparison: Option<TreeComparison>,
    /// The lease held while the plugin ran (`--hold`).
    pub held: Option<HeldLease>,
}

impl HarnessReport {
    /// Whether the result matches the expectation (true without one).
    pub fn passed(&self) -> bool {
        self.comparison.as_ref().is_none_or(TreeComparison::matches)
    }
}

/// Why a harness run could not finish. A result that differs from the
/// expectation is not an error: see [`HarnessReport::comparison`].
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The action file cannot be read or is malformed.
    #[error("action file `{path}`: {message}")]
    Action {
        /// The action file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The fixture or expected directory is missing or cannot be read.
    #[error("{what} `{path}`: {message}")]
    Directory {
        /// `fixture` or `expected directory`.
        what: &'static str,
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The plugin under test cannot be found or its manifest is unusable.
    #[error("plugin `{plugin}`: {source}")]
    Plugin {
        /// The plugin as given.
        plugin: String,
        /// Why it cannot be used.
        source: PluginError,
    },
    /// The scratch project, the plugin engine or the database could not
    /// be set up.
    #[error("cannot set up the test run: {what}: {source}")]
    Setup {
        /// What could not be set up.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A phase of the plan failed: the plugin's error, a refused change, a
    /// plugin that cannot be loaded.
    #[error(transparent)]
    Plan(#[from] LifecycleError),
    /// The lease to hold (`--hold`) could not be taken.
    #[error("cannot hold `{resource}`: {source}")]
    Hold {
        /// The full resource name.
        resource: String,
        /// Why.
        #[source]
        source: LockError,
    },
    /// A phase failed after the strategist's proposal: `report` has what
    /// ran before the failure (the proposal; the steps and changes too when
    /// Apply failed), `source` is the failure.
    #[error("{source}")]
    AfterProposal {
        /// What ran before the failure.
        report: Box<HarnessReport>,
        /// What failed.
        #[source]
        source: Box<HarnessError>,
    },
    /// A phase failed while the harness held a lease (`--hold`): `source`
    /// is the failure, `held` says what was held.
    #[error("{source}")]
    WhileHolding {
        /// The lease that was held.
        held: HeldLease,
        /// What failed.
        #[source]
        source: Box<HarnessError>,
    },
}

/// Run the plugin against a copy of the fixture: Strategize and Execute,
/// and with an expectation also Apply and compare. A phase that fails
/// after the strategist's proposal keeps what ran in the error
/// ([`HarnessError::AfterProposal`]).
pub async fn run(options: HarnessOptions) -> Result<HarnessReport, HarnessError> {
    let (action, plugin, engine) = prepare(&options)?;
    let scratch = tempfile::Builder::new()
        .prefix("lockstep-plugin-test-")
        .tempdir()
        .map_err(|e| HarnessError::Setup {
            what: "scratch directory",
            source: e.into(),
        })?;
    let project = scratch.path().join("project");
    tree::copy_tree(&options.fixture, &project).map_err(|e| HarnessError::Directory {
        what: "fixture",
        path: options.fixture.clone(),
        message: format!("cannot copy it: {e}"),
    })?;
    let container = scratch_container(&options, scratch.path(), &project, engine).await?;
    let session = container.lifecycle();
    let mut report = HarnessReport {
        plugin,
        action,
        proposal: PlanProposal {
            summary: String::new(),
            steps: Vec::new(),
        },
        steps: Vec::new(),
        changes: Vec::new(),
        comparison: None,
        held: None,
    };
    let ran = drive(&container, &session, &project, &options, &mut report).await;
    let _ = session.close().await;
    ran.map(|()| report)
}

/// The action with the plugin under test in the roles its kind allows,
/// the plugin as resolved, and the engine to run it.
fn prepare(
    options: &HarnessOptions,
) -> Result<(Action, Option<PluginUnderTest>, PluginEngine), HarnessError> {
    let mut action = read_action(&options.action)?;
    check_dir("fixture", &options.fixture)?;
    if let Some(expect) = &options.expect {
        check_dir("expected directory", expect)?;
    }
    let mut engine =
        PluginEngine::with_options(options.plugin_dirs.clone(), options.plugins.clone()).map_err(
            |e| HarnessError::Setup {
                what: "plugin engine",
                source: e.into(),
            },
        )?;
    if options.fixture_plugins {
        engine = engine.with_project_plugins(&options.fixture);
    }
    let Some(given) = &options.plugin else {
        return Ok((action, None, engine));
    };
    let plugin = resolve(&mut engine, given)?;
    if plugin.kind.allows(Role::Strategist) {
        action.strategy = plugin.name.clone();
    }
    if plugin.kind.allows(Role::Executor) {
        action.executor = plugin.name.clone();
    }
    Ok((action, Some(plugin), engine))
}

/// A container for `project` on a scratch SQLite database in `scratch`.
async fn scratch_container(
    options: &HarnessOptions,
    scratch: &Path,
    project: &Path,
    engine: PluginEngine,
) -> Result<Container, HarnessError> {
    let mut config = Config::for_project(project);
    config.database_url = Some(format!(
        "sqlite://{}",
        scratch.join("lockstep.db").display()
    ));
    config.plugin_dirs = options.plugin_dirs.clone();
    config.project_plugins = options.fixture_plugins;
    config.plugins = options.plugins.clone();
    Container::build_with_plugins(config, Arc::new(engine))
        .await
        .map_err(|e| HarnessError::Setup {
            what: "database",
            source: e.into(),
        })
}

/// The plan through the phases, filling `report` as each one finishes: the
/// proposal, the steps and changes, the held lease, the comparison.
async fn drive(
    container: &Container,
    session: &PlanLifecycleService,
    project: &Path,
    options: &HarnessOptions,
    report: &mut HarnessReport,
) -> Result<(), HarnessError> {
    let plan = session.new_plan(report.action.clone(), project).await?;
    let hold = match &options.hold {
        Some(name) => Some(hold(container.locks(), &plan.project_id, name).await?),
        None => None,
    };
    let ran = propose_and_execute(session, &plan.id, report).await;
    if let Some((guard, held)) = hold {
        // Released now: Apply does not need it, and the report says it was held.
        let _ = guard.release().await;
        report.held = Some(held);
    }
    let compared = match ran {
        Ok(()) => compare(session, &plan.id, project, options, report).await,
        Err(e) => Err(e.into()),
    };
    compared.map_err(|e| failed(e, report))
}

/// Strategize and Execute, keeping the proposal, the step summaries and
/// the changes in `report`.
async fn propose_and_execute(
    session: &PlanLifecycleService,
    id: &str,
    report: &mut HarnessReport,
) -> Result<(), LifecycleError> {
    let plan = session.strategize_plan(id).await?;
    if let Some(proposal) = plan.proposal {
        report.proposal = proposal;
    }
    session.execute_plan(id).await?;
    report.changes = session.changes(id).await?;
    report.steps = session.status(id).await?.steps;
    Ok(())
}

/// The result compared with the expectation, if there is one: the
/// changeset applied to the copy and compared with the expected tree, or
/// (`expect_unchanged`) the changeset itself, which must be empty.
async fn compare(
    session: &PlanLifecycleService,
    id: &str,
    project: &Path,
    options: &HarnessOptions,
    report: &mut HarnessReport,
) -> Result<(), HarnessError> {
    if options.expect_unchanged {
        let files = tree::count_files(&options.fixture).unwrap_or(0);
        report.comparison = Some(unchanged(&report.changes, files));
        return Ok(());
    }
    let Some(expect) = &options.expect else {
        return Ok(());
    };
    session.apply_plan(id).await?;
    let compared = tree::compare_trees(project, expect).map_err(|e| HarnessError::Directory {
        what: "expected directory",
        path: expect.clone(),
        message: format!("cannot compare with it: {e}"),
    })?;
    report.comparison = Some(compared);
    Ok(())
}

/// The changeset against the expectation of no changes: every change is a
/// difference (a write to an existing file `different`, a new file
/// `extra`, a deleted one `missing`), with its diff; `files` is the number
/// of files of the fixture.
fn unchanged(changes: &[ChangeRecord], files: usize) -> TreeComparison {
    let differences: Vec<Difference> = changes
        .iter()
        .map(|c| {
            let (kind, from, to) = match (c.kind, &c.base_hash) {
                (ChangeKind::Delete, _) => (DifferenceKind::Missing, "expected/", None),
                (ChangeKind::Write, None) => (DifferenceKind::Extra, "", Some("actual/")),
                (ChangeKind::Write, Some(_)) => {
                    (DifferenceKind::Different, "expected/", Some("actual/"))
                }
            };
            let label = |prefix: Option<&str>| match prefix {
                Some(p) if !p.is_empty() => format!("{p}{}", c.path),
                _ => "/dev/null".to_string(),
            };
            let (old, new) = (
                c.base_contents.as_deref().unwrap_or_default(),
                c.contents.as_deref().unwrap_or_default(),
            );
            let mut diff = unified_diff(old, new, &label(Some(from)), &label(to));
            if diff.is_empty() {
                diff = format!(
                    "--- {}\n+++ {}\nrewritten with the same contents\n",
                    label(Some(from)),
                    label(to)
                );
            }
            Difference {
                path: c.path.clone(),
                kind,
                diff,
            }
        })
        .collect();
    let created = differences
        .iter()
        .filter(|d| d.kind == DifferenceKind::Extra)
        .count();
    TreeComparison {
        files: files + created,
        differences,
    }
}

/// A failure of the plan, with what ran before it when the strategist had
/// made its proposal, and the lease held meanwhile.
fn failed(e: HarnessError, report: &HarnessReport) -> HarnessError {
    let proposed = !report.proposal.steps.is_empty() || !report.proposal.summary.is_empty();
    let e = match proposed {
        true => HarnessError::AfterProposal {
            report: Box::new(report.clone()),
            source: Box::new(e),
        },
        false => e,
    };
    match &report.held {
        Some(held) => HarnessError::WhileHolding {
            held: held.clone(),
            source: Box::new(e),
        },
        None => e,
    }
}

/// Take the plugin lease `name` of project `project_id` under an owner of
/// its own (renewed until released), as another session would.
async fn hold(
    locks: &LockService,
    project_id: &str,
    name: &str,
) -> Result<(LockGuard, HeldLease), HarnessError> {
    let owner = Owner::new_session();
    let resource = ScopedLocks::new(locks.clone(), owner.clone(), project_id, HOLD_OPERATION)
        .resource_for(name);
    let guard = locks
        .lock(
            &resource,
            &owner,
            HOLD_OPERATION,
            Duration::from_secs(60),
            Duration::ZERO,
        )
        .await
        .map_err(|source| HarnessError::Hold {
            resource: resource.clone(),
            source,
        })?;
    let held = HeldLease {
        resource,
        owner: owner.id,
        operation: HOLD_OPERATION.into(),
        token: guard.token(),
    };
    Ok((guard, held))
}

fn read_action(path: &Path) -> Result<Action, HarnessError> {
    let error = |message: String| HarnessError::Action {
        path: path.to_path_buf(),
        message,
    };
    let source = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    parse_action(&source).map_err(|e| error(e.to_string()))
}

fn check_dir(what: &'static str, path: &Path) -> Result<(), HarnessError> {
    if path.is_dir() {
        return Ok(());
    }
    Err(HarnessError::Directory {
        what,
        path: path.to_path_buf(),
        message: if path.exists() {
            "not a directory".into()
        } else {
            "no such directory".into()
        },
    })
}

/// The plugin `given` names: a component file (pinned in the engine, so
/// that it wins over any plugin of the same name in the directories) or a
/// plugin name.
fn resolve(engine: &mut PluginEngine, given: &str) -> Result<PluginUnderTest, HarnessError> {
    let failed = |source| HarnessError::Plugin {
        plugin: given.to_string(),
        source,
    };
    let path = Path::new(given);
    let (name, version, kind, path) = if given.ends_with(".wasm") || path.is_file() {
        let manifest = engine.pin(path).map_err(failed)?;
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        (manifest.name, manifest.version, manifest.kind, path)
    } else {
        let info = engine.find(given).map_err(failed)?;
        match (info.kind, info.problem) {
            (Some(kind), None) => (info.name, info.version, kind, info.path),
            (_, problem) => {
                return Err(failed(PluginError::Load(
                    problem.unwrap_or_else(|| "its manifest cannot be read".into()),
                )))
            }
        }
    };
    Ok(PluginUnderTest {
        name,
        version,
        path,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authoring::DifferenceKind;

    /// The built example plugins (the test-artifacts crate builds them).
    fn dist() -> PathBuf {
        lockstep_test_artifacts::dist()
    }

    struct Setup {
        dir: tempfile::TempDir,
    }

    impl Setup {
        /// A fixture with `a.txt`, an action for plugins that do not exist
        /// (`ghost`), and an expected tree with `a.txt` = `expected`.
        fn new(expected: &str) -> Setup {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("fixture/sub")).unwrap();
            std::fs::write(dir.path().join("fixture/a.txt"), "hello world\n").unwrap();
            std::fs::write(dir.path().join("fixture/sub/b.txt"), "other\n").unwrap();
            std::fs::create_dir_all(dir.path().join("expected/sub")).unwrap();
            std::fs::write(dir.path().join("expected/a.txt"), expected).unwrap();
            std::fs::write(dir.path().join("expected/sub/b.txt"), "other\n").unwrap();
            std::fs::write(
                dir.path().join("action.toml"),
                "name = \"greet\"\nstrategy = \"ghost\"\nexecutor = \"ghost\"\n\
                 [params]\nfind = \"hello\"\nreplace = \"goodbye\"\n",
            )
            .unwrap();
            Setup { dir }
        }

        fn options(&self, plugin: Option<String>) -> HarnessOptions {
            HarnessOptions {
                plugin,
                fixture: self.dir.path().join("fixture"),
                action: self.dir.path().join("action.toml"),
                expect: Some(self.dir.path().join("expected")),
                expect_unchanged: false,
                plugin_dirs: Vec::new(),
                fixture_plugins: false,
                plugins: PluginsConfig::default(),
                hold: None,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_component_file_takes_both_roles_and_the_fixture_is_untouched() {
        let setup = Setup::new("goodbye world\n");
        let wasm = dist().join("replace.wasm");
        let report = run(setup.options(Some(wasm.display().to_string())))
            .await
            .unwrap();
        assert!(report.passed(), "{:?}", report.comparison);
        assert_eq!(report.action.strategy, "replace");
        assert_eq!(report.action.executor, "replace");
        assert_eq!(report.plugin.as_ref().unwrap().kind, PluginKind::Plugin);
        assert_eq!(report.proposal.steps.len(), 1);
        assert_eq!(report.changes.len(), 1);
        assert_eq!(report.changes[0].path, "a.txt");
        assert_eq!(report.comparison.as_ref().unwrap().files, 2);
        assert_eq!(
            std::fs::read_to_string(setup.dir.path().join("fixture/a.txt")).unwrap(),
            "hello world\n",
            "the fixture itself is never changed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_that_differs_is_reported_not_an_error() {
        let setup = Setup::new("farewell world\n");
        // By name, from a plugin directory.
        let mut options = setup.options(Some("replace".into()));
        options.plugin_dirs = vec![dist()];
        let report = run(options).await.unwrap();
        assert!(!report.passed());
        let c = report.comparison.unwrap();
        assert_eq!(c.paths(DifferenceKind::Different), ["a.txt"]);
        assert!(c.differences[0]
            .diff
            .contains("-farewell world\n+goodbye world\n"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_an_expectation_nothing_is_applied() {
        let setup = Setup::new("");
        let mut options = setup.options(Some(dist().join("replace.wasm").display().to_string()));
        options.expect = None;
        let report = run(options).await.unwrap();
        assert!(report.passed() && report.comparison.is_none());
        assert_eq!(report.changes.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expect_unchanged_passes_only_when_nothing_is_changed() {
        let setup = Setup::new("");
        let mut options = setup.options(Some(dist().join("replace.wasm").display().to_string()));
        options.expect = None;
        options.expect_unchanged = true;
        let report = run(options.clone()).await.unwrap();
        assert!(!report.passed());
        let c = report.comparison.as_ref().unwrap();
        assert_eq!(c.files, 2);
        assert_eq!(c.paths(DifferenceKind::Different), ["a.txt"]);
        assert_eq!(
            c.differences[0].diff,
            "--- expected/a.txt\n+++ actual/a.txt\n@@ -1 +1 @@\n-hello world\n+goodbye world\n"
        );
        assert_eq!(
            std::fs::read_to_string(setup.dir.path().join("fixture/a.txt")).unwrap(),
            "hello world\n"
        );
        // Already done: nothing to find, nothing changed.
        std::fs::write(
            setup.dir.path().join("action.toml"),
            "name = \"x\"\nstrategy = \"a\"\nexecutor = \"b\"\n[params]\nfind = \"absent\"\nreplace = \"y\"\n",
        )
        .unwrap();
        let report = run(options).await.unwrap();
        assert!(report.passed(), "{:?}", report.comparison);
        assert!(report.changes.is_empty());
        assert_eq!(report.comparison.unwrap().files, 2);
    }

    #[test]
    fn created_deleted_and_rewritten_files_are_changes() {
        let record = |path: &str, kind, base: Option<&str>, new: Option<&str>| ChangeRecord {
            path: path.into(),
            kind,
            contents: new.map(|s| s.as_bytes().to_vec()),
            base_contents: base.map(|s| s.as_bytes().to_vec()),
            base_hash: base.map(|_| "h".into()),
            new_hash: None,
        };
        let c = unchanged(
            &[
                record("new", ChangeKind::Write, None, Some("n\n")),
                record("gone", ChangeKind::Delete, Some("g\n"), None),
                record("same", ChangeKind::Write, Some("s\n"), Some("s\n")),
            ],
            5,
        );
        assert_eq!(c.files, 6, "the new file counts");
        assert_eq!(c.paths(DifferenceKind::Extra), ["new"]);
        assert_eq!(c.paths(DifferenceKind::Missing), ["gone"]);
        assert_eq!(c.paths(DifferenceKind::Different), ["same"]);
        assert!(c.differences[0]
            .diff
            .starts_with("--- /dev/null\n+++ actual/new\n"));
        assert!(c.differences[1]
            .diff
            .starts_with("--- expected/gone\n+++ /dev/null\n"));
        assert_eq!(
            c.differences[2].diff,
            "--- expected/same\n+++ actual/same\nrewritten with the same contents\n"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_after_the_proposal_keeps_the_proposal() {
        let setup = Setup::new("");
        std::fs::write(
            setup.dir.path().join("action.toml"),
            "name = \"x\"\nstrategy = \"a\"\nexecutor = \"b\"\n[params]\nmode = \"trap\"\n",
        )
        .unwrap();
        let wasm = dist().join("hostile.wasm").display().to_string();
        let e = run(setup.options(Some(wasm))).await.unwrap_err();
        let HarnessError::AfterProposal { report, source } = e else {
            panic!("{e:?}");
        };
        assert_eq!(report.proposal.summary, "Misbehave: trap");
        assert_eq!(report.proposal.steps.len(), 1);
        assert!(report.changes.is_empty() && report.comparison.is_none());
        assert!(
            matches!(
                *source,
                HarnessError::Plan(LifecycleError::Plugin {
                    source: PluginError::Trap { .. },
                    ..
                })
            ),
            "{source:?}"
        );
        assert!(source
            .to_string()
            .starts_with("execute failed: plugin `hostile` trapped"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_cannot_run_is_named() {
        let setup = Setup::new("");
        // The action's own plugins do not exist.
        let e = run(setup.options(None)).await.unwrap_err();
        assert!(
            matches!(e, HarnessError::Plan(LifecycleError::InvalidAction(_))),
            "{e}"
        );
        assert!(e.to_string().contains("no plugin named `ghost`"), "{e}");
        let e = run(setup.options(Some("missing.wasm".into())))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("`missing.wasm` is not a component file"),
            "{e}"
        );
        let e = run(setup.options(Some("ghost".into()))).await.unwrap_err();
        assert!(matches!(e, HarnessError::Plugin { .. }), "{e}");
        // The plugin refuses the action: `replace` needs `find`.
        std::fs::write(
            setup.dir.path().join("action.toml"),
            "name = \"x\"\nstrategy = \"a\"\nexecutor = \"b\"\n",
        )
        .unwrap();
        let wasm = dist().join("replace.wasm").display().to_string();
        let e = run(setup.options(Some(wasm))).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("strategize failed: invalid input"),
            "{e}"
        );
        let mut options = setup.options(None);
        options.fixture = setup.dir.path().join("nope");
        let e = run(options).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "fixture `{}`: no such directory",
                setup.dir.path().join("nope").display()
            )
        );
        std::fs::write(setup.dir.path().join("action.toml"), "name = 1\n").unwrap();
        let e = run(setup.options(None)).await.unwrap_err();
        assert!(matches!(e, HarnessError::Action { .. }), "{e}");
    }
}
