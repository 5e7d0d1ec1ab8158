#![allow(missing_docs)] // criterion_group! generates undocumented items

//! Plugin and lifecycle costs with the real `noop` component:
//! instantiate + call through lockstep (a fresh instance per call), and one
//! full four-phase lifecycle on SQLite with one-step no-op plugins, and a
//! Python / JavaScript plugin loaded from the compiled-component cache by a
//! fresh engine and called once.
//! Needs the example plugins built (`just plugins`, run by `just bench`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lockstep::db::Db;
use lockstep::lifecycle::{PluginContext, PluginProvider};
use lockstep::locks::{LockService, Owner, ScopedLocks};
use lockstep::model::{Action, Step};
use lockstep::plugins::{PluginEngine, PluginsConfig};
use lockstep::workspace::ProjectView;
use lockstep::{Config, Container};
use tokio_util::sync::CancellationToken;

fn dist() -> PathBuf {
    lockstep_test_artifacts::dist()
}

fn noop_action() -> Action {
    Action {
        name: "noop".into(),
        strategy: "noop".into(),
        executor: "noop".into(),
        params: Default::default(),
    }
}

/// A plugin context on a SQLite database in `dir`, with `dir` as the project.
fn context(rt: &tokio::runtime::Runtime, dir: &Path) -> PluginContext {
    let db = rt
        .block_on(Db::connect(&format!(
            "sqlite://{}",
            dir.join("b.db").display()
        )))
        .unwrap();
    PluginContext {
        plan_id: "bench".into(),
        project: Arc::new(ProjectView::new(dir).unwrap()),
        locks: ScopedLocks::new(LockService::new(db), Owner::new_session(), "bench", "bench"),
        cancel: CancellationToken::new(),
        progress: None,
    }
}

fn plugin_call(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = PluginEngine::with_options(vec![dist()], PluginsConfig::default()).unwrap();
    let ctx = context(&rt, dir.path());
    let executor = engine.executor("noop").unwrap();
    let step = Step {
        id: "noop".into(),
        title: "noop".into(),
        params: Default::default(),
        targets: vec![],
    };
    c.bench_function("plugin/instantiate_and_call/noop", |b| {
        b.to_async(&rt)
            .iter(|| async { executor.execute(&ctx, &step).await.unwrap() })
    });
}

fn lifecycle(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let mut config = Config::for_project(&project);
    config.plugin_dirs = vec![dist()];
    let container = rt.block_on(Container::build(config)).unwrap();
    let session = container.lifecycle();
    let mut group = c.benchmark_group("lifecycle");
    group.throughput(Throughput::Elements(1));
    group.bench_function("four_phases/noop/sqlite", |b| {
        b.to_async(&rt).iter(|| async {
            let plan = session.new_plan(noop_action(), &project).await.unwrap();
            session.strategize_plan(&plan.id).await.unwrap();
            session.execute_plan(&plan.id).await.unwrap();
            session.apply_plan(&plan.id).await.unwrap();
        })
    });
    group.finish();
}

/// What a new host process pays for a Python or JavaScript plugin whose
/// compiled form is already in the disk cache: look it up (map and verify
/// the artifact, link) and make the first call.
fn load_from_cache(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(&rt, dir.path());
    let options = PluginsConfig {
        cache_dir: Some(dir.path().join("cache")),
        pooling: false,
        ..Default::default()
    };
    let mut group = c.benchmark_group("plugin/load_from_cache_and_first_call");
    group.sample_size(10);
    for name in ["json-format", "trailing-whitespace"] {
        if !dist().join(format!("{name}.wasm")).is_file() {
            eprintln!("skipping {name}: not built");
            continue;
        }
        let action = Action {
            name: name.into(),
            strategy: name.into(),
            executor: name.into(),
            params: Default::default(),
        };
        // Fill the cache once.
        let engine = PluginEngine::with_options(vec![dist()], options.clone()).unwrap();
        engine.strategist(name).unwrap();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iterations| {
                let (options, ctx, action) = (options.clone(), &ctx, &action);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let engine =
                            PluginEngine::with_options(vec![dist()], options.clone()).unwrap();
                        let started = Instant::now();
                        let strategist = engine.strategist(name).unwrap();
                        let _ = strategist.strategize(ctx, action).await;
                        total += started.elapsed();
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = plugin_call, lifecycle, load_from_cache
}
criterion_main!(benches);
