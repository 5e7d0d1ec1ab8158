//! Plans driven through the container and the lifecycle with real plugin
//! components from `plugins/dist` (built by the test-artifacts crate).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lockstep::lifecycle::progress::Progress;
use lockstep::lifecycle::{LifecycleError, PluginError};
use lockstep::model::{Action, State};
use lockstep::plugins::{PluginEngine, PluginsConfig};
use lockstep::{Config, Container};

fn dist() -> PathBuf {
    lockstep_test_artifacts::dist()
}

async fn container(project: &Path) -> Container {
    let mut config = Config::for_project(project);
    config.plugin_dirs = vec![dist()];
    Container::build(config).await.unwrap()
}

fn action(strategy: &str, executor: &str, params: &[(&str, &str)]) -> Action {
    Action {
        name: "test".into(),
        strategy: strategy.into(),
        executor: executor.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[tokio::test]
async fn a_plan_runs_end_to_end_with_wasm_plugins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    let container = container(dir.path()).await;
    let session = container.lifecycle();

    let params = [("header", "Copyright Acme")];
    let plan = session
        .new_plan(
            action("license-header", "license-header", &params),
            dir.path(),
        )
        .await
        .unwrap();
    let plan = session.strategize_plan(&plan.id).await.unwrap();
    assert_eq!(plan.proposal.unwrap().steps.len(), 1);
    session.execute_plan(&plan.id).await.unwrap();
    session.apply_plan(&plan.id).await.unwrap();

    assert_eq!(
        std::fs::read_to_string(dir.path().join("src/main.rs")).unwrap(),
        "// Copyright Acme\n\nfn main() {}\n"
    );
    assert!(container.locks().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_trapping_executor_errors_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "as it was\n").unwrap();
    let container = container(dir.path()).await;
    let session = container.lifecycle();

    let plan = session
        .new_plan(
            action("hostile", "hostile", &[("mode", "trap")]),
            dir.path(),
        )
        .await
        .unwrap();
    session.strategize_plan(&plan.id).await.unwrap();
    let err = session.execute_plan(&plan.id).await.unwrap_err();
    let LifecycleError::Plugin { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(source, PluginError::Trap { plugin, .. } if plugin == "hostile"),
        "{source:?}"
    );

    assert_eq!(
        std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
        "as it was\n"
    );
    assert!(container.locks().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_command_component_is_refused_when_the_plan_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let container = container(dir.path()).await;
    let err = container
        .lifecycle()
        .new_plan(action("noop", "wrong-world", &[]), dir.path())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("`wrong-world.wasm` is not a lockstep plugin")
            && message.contains("lockstep:plugin/execution (0.1.x or 0.2.x)"),
        "{message}"
    );
}

#[tokio::test]
async fn a_plugin_built_against_0_1_0_still_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let engine = PluginEngine::with_options(vec![dist()], PluginsConfig::default()).unwrap();
    let noop = engine.inspect(Path::new("noop")).unwrap();
    assert_eq!(noop.api.as_deref(), Some("0.1.0"), "noop stays on 0.1.0");
    assert!(noop.problems.is_empty(), "{:?}", noop.problems);

    let container = container(dir.path()).await;
    let session = container.lifecycle();
    let plan = session
        .new_plan(action("noop", "noop", &[]), dir.path())
        .await
        .unwrap();
    let plan = session.strategize_plan(&plan.id).await.unwrap();
    assert_eq!(plan.proposal.unwrap().summary, "noop");
    session.execute_plan(&plan.id).await.unwrap();
    session.apply_plan(&plan.id).await.unwrap();
    let view = session.status(&plan.id).await.unwrap();
    assert_eq!(view.plan.status.state, State::Applied);
    assert_eq!(view.steps.len(), 1);
    assert!(container.locks().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn progress_of_a_0_2_0_plugin_reaches_the_lifecycle_progress_callback() {
    let dir = tempfile::tempdir().unwrap();
    let container = container(dir.path()).await;
    let mut session = container.lifecycle();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let events = seen.clone();
    session.set_progress(Arc::new(move |p: &Progress| {
        events.lock().unwrap().push(p.clone())
    }));

    let params = [("steps", "2"), ("ms", "20")];
    let plan = session
        .new_plan(action("slow", "slow", &params), dir.path())
        .await
        .unwrap();
    session.strategize_plan(&plan.id).await.unwrap();
    seen.lock().unwrap().clear();
    session.execute_plan(&plan.id).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let mut expected = Vec::new();
    for (index, id) in ["s1", "s2"].into_iter().enumerate() {
        expected.push(format!("started {index}"));
        for done in [5, 10, 15, 20] {
            expected.push(format!("slow {done}/20 step {id}: slept {done} of 20 ms"));
        }
        expected.push(format!("finished {index}"));
    }
    let got: Vec<String> = seen
        .iter()
        .filter_map(|p| match p {
            Progress::StepStarted { index, .. } => Some(format!("started {index}")),
            Progress::PluginProgress {
                plugin,
                done,
                total,
                message,
            } => Some(format!("{plugin} {done}/{total} {message}")),
            Progress::StepFinished { index, .. } => Some(format!("finished {index}")),
            Progress::PhaseStarted { .. } => None,
        })
        .collect();
    assert_eq!(got, expected);
}

/// `noop.wasm` (built against 0.1.0) with its `@0.1.0` names patched to
/// claim `version`, as plugin `name` whose manifest declares `api`.
fn noop_claiming(dir: &Path, name: &str, version: &str, api: &str) {
    let to = format!("@{version}");
    assert_eq!(to.len(), "@0.1.0".len());
    let bytes = std::fs::read(dist().join("noop.wasm")).unwrap();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"@0.1.0") {
            out.extend_from_slice(to.as_bytes());
            i += to.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    std::fs::write(dir.join(format!("{name}.wasm")), out).unwrap();
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nkind = \"plugin\"\napi = \"{api}\"\n"),
    )
    .unwrap();
}

#[tokio::test]
async fn plugins_of_an_unknown_major_or_an_unreleased_minor_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    noop_claiming(plugins.path(), "next-major", "1.0.0", "1.0.0");
    noop_claiming(plugins.path(), "next-minor", "0.3.0", "0.2.0");
    let mut config = Config::for_project(dir.path());
    config.plugin_dirs = vec![plugins.path().to_path_buf(), dist()];
    let container = Container::build(config).await.unwrap();
    let session = container.lifecycle();

    let message = session
        .new_plan(action("next-major", "next-major", &[]), dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("plugin `next-major` declares api = \"1.0.0\"")
            && message.contains(
                "which is newer than this host: it supports lockstep:plugin 0.1.x and 0.2.x"
            ),
        "{message}"
    );

    let message = session
        .new_plan(action("next-minor", "next-minor", &[]), dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(
            "`next-minor.wasm` was built against lockstep:plugin@0.3.0 (it exports \
             lockstep:plugin/strategy@0.3.0), which is newer than this host: it supports \
             lockstep:plugin 0.1.x and 0.2.x. Upgrade lockstep, or build the plugin against \
             lockstep:plugin@0.2.0"
        ),
        "{message}"
    );
}
