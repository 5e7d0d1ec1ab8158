//! Embedding lockstep: build the container from a config, load plugins,
//! run a plan, and handle a `LockConflictError` from a second session.
//!
//! ```sh
//! plugins/build.sh
//! cargo run -p lockstep --example embed -- examples/sample-project plugins/dist
//! ```
//!
//! The project is copied to a temporary directory first, so the example can
//! be run again and again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lockstep::lifecycle::LifecycleError;
use lockstep::model::Action;
use lockstep::{Config, Container};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let source = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "examples/sample-project".into()),
    );
    let plugins = PathBuf::from(args.next().unwrap_or_else(|| "plugins/dist".into()));

    let work = std::env::temp_dir().join(format!("lockstep-embed-{}", std::process::id()));
    copy_dir(&source, &work)?;

    // One container per process: the lock service, store and plugin engine.
    let mut config = Config::for_project(&work);
    config.plugin_dirs.push(plugins);
    let container = Container::build(config).await?;

    // A session runs a plan through every phase.
    let session = container.lifecycle();
    let action = Action {
        name: "add-license-header".into(),
        strategy: "license-header".into(),
        executor: "license-header".into(),
        params: [(
            "header".to_string(),
            "SPDX-License-Identifier: Apache-2.0".to_string(),
        )]
        .into(),
    };
    let plan = session.new_plan(action, &work).await?;
    let plan = session.strategize_plan(&plan.id).await?;
    println!(
        "proposal: {}",
        plan.proposal
            .as_ref()
            .map(|p| p.summary.as_str())
            .unwrap_or("")
    );
    session.execute_plan(&plan.id).await?;
    let report = session.apply_plan(&plan.id).await?;
    println!("applied plan {}: {} file(s)", report.plan_id, report.files);

    // Two sessions, one plan: the second gets a lock conflict naming the first.
    let slow = Action {
        name: "slow".into(),
        strategy: "slow".into(),
        executor: "slow".into(),
        params: [
            ("steps".to_string(), "1".to_string()),
            ("ms".to_string(), "1500".to_string()),
        ]
        .into(),
    };
    let first = container.lifecycle();
    let plan = first.new_plan(slow, &work).await?;
    first.strategize_plan(&plan.id).await?;
    let id = plan.id.clone();
    let running = tokio::spawn(async move { first.execute_plan(&id).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let second = container.lifecycle();
    match second.execute_plan(&plan.id).await {
        Err(LifecycleError::LockConflict(conflict)) => println!(
            "second session refused: {} holds `{}` for `{}` until {}",
            conflict.owner,
            conflict.resource,
            conflict.operation,
            lockstep::locks::format_ms(conflict.expires_at)
        ),
        other => println!("unexpected: {other:?}"),
    }
    running.await??;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
