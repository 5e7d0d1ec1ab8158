//! Plans driven through the container and the lifecycle with real plugin
//! components from `plugins/dist` (built by `plugins/build.sh`).

use std::path::{Path, PathBuf};

use lockstep::lifecycle::{Action, LifecycleError, PluginError};
use lockstep::{Config, Container};

fn dist() -> PathBuf {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    assert!(
        dist.join("license-header.wasm").is_file() && dist.join("hostile.wasm").is_file(),
        "the example plugins are missing from {}: run plugins/build.sh first",
        dist.display()
    );
    dist
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
