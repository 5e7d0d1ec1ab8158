//! Tests that run the example plugins from `plugins/dist` (built by the
//! `lockstep-test-artifacts` crate before the tests compile). Each breaks one thing, checks the typed error, and
//! then checks that the engine still serves calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::call::{CallReport, Request, Response};
use super::*;
use crate::db::Db;
use crate::lifecycle::PluginContext;
use crate::locks::{LockService, Owner, ScopedLocks};
use crate::model::FileChange;
use crate::workspace::ProjectView;

mod versions;

/// The folder of built example plugins (built by the test-artifacts crate).
fn dist() -> PathBuf {
    lockstep_test_artifacts::dist()
}

/// A project directory, a lock service on a fresh database, and a context.
struct Fixture {
    _dir: tempfile::TempDir,
    project: PathBuf,
    locks: LockService,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join("src")).unwrap();
        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        Fixture {
            _dir: dir,
            project,
            locks: LockService::new(db),
        }
    }

    fn ctx(&self) -> PluginContext {
        self.ctx_for(Owner::new_session())
    }

    fn ctx_for(&self, owner: Owner) -> PluginContext {
        PluginContext {
            plan_id: "plan-1".into(),
            project: Arc::new(ProjectView::new(&self.project).unwrap()),
            locks: ScopedLocks::new(self.locks.clone(), owner, "projid", "test"),
            cancel: CancellationToken::new(),
            progress: None,
        }
    }
}

fn engine_with(policy: LimitsPolicy) -> PluginEngine {
    PluginEngine::with_options(
        vec![dist()],
        PluginsConfig {
            limits: policy,
            ..PluginsConfig::default()
        },
    )
    .unwrap()
}

fn engine() -> PluginEngine {
    engine_with(LimitsPolicy::default())
}

/// A policy whose ceilings force `timeout` and `memory_mb` on every plugin.
fn capped(timeout: Duration, memory_mb: u64) -> LimitsPolicy {
    let mut policy = LimitsPolicy::default();
    policy.max.timeout = timeout;
    policy.max.memory_bytes = memory_mb << 20;
    policy
}

fn step(params: &[(&str, &str)]) -> Step {
    Step {
        id: "s".into(),
        title: "t".into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        targets: vec![],
    }
}

fn action(params: &[(&str, &str)]) -> Action {
    Action {
        name: "a".into(),
        strategy: "s".into(),
        executor: "e".into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

async fn execute(
    engine: &PluginEngine,
    name: &str,
    ctx: &PluginContext,
    params: &[(&str, &str)],
) -> (Result<StepOutcome, PluginError>, CallReport) {
    let plugin = engine.plugin(name, Role::Executor).unwrap();
    let (result, report) = plugin.call(ctx, Request::Execute(step(params))).await;
    let result = result.map(|r| match r {
        Response::Outcome(o) => o,
        Response::Proposal(p) => panic!("execute returned {p:?}"),
    });
    (result, report)
}

/// The engine still loads and runs a plugin after whatever happened before.
async fn assert_still_works(engine: &PluginEngine, fx: &Fixture) {
    let strategist = engine.strategist("noop").unwrap();
    let proposal = strategist
        .strategize(&fx.ctx(), &action(&[]))
        .await
        .unwrap();
    assert_eq!(proposal.steps.len(), 1);
    let (outcome, _) = execute(engine, "hostile", &fx.ctx(), &[("mode", "read-outside")]).await;
    outcome.unwrap();
}

#[tokio::test]
async fn license_header_proposes_and_executes() {
    let fx = Fixture::new().await;
    std::fs::write(fx.project.join("src/a.rs"), "fn a() {}\n").unwrap();
    std::fs::write(
        fx.project.join("src/b.rs"),
        "// Copyright Acme\n\nfn b() {}\n",
    )
    .unwrap();
    std::fs::write(fx.project.join("README.md"), "readme\n").unwrap();
    let engine = engine();
    let params = [("header", "Copyright Acme")];

    let strategist = engine.strategist("license-header").unwrap();
    let proposal = strategist
        .strategize(&fx.ctx(), &action(&params))
        .await
        .unwrap();
    assert_eq!(proposal.summary, "Add the license header to 1 of 2 files");
    assert_eq!(proposal.steps.len(), 1);
    let step = &proposal.steps[0];
    assert_eq!(step.targets, vec!["src/a.rs"]);
    assert_eq!(
        step.params.get("path").map(String::as_str),
        Some("src/a.rs")
    );

    let executor = engine.executor("license-header").unwrap();
    let outcome = executor.execute(&fx.ctx(), step).await.unwrap();
    assert_eq!(
        outcome.changes,
        vec![FileChange::Write {
            path: "src/a.rs".into(),
            contents: b"// Copyright Acme\n\nfn a() {}\n".to_vec()
        }]
    );
    assert_eq!(outcome.summary, "Added the license header to src/a.rs");
}

#[tokio::test]
async fn a_busy_loop_is_killed_at_the_deadline() {
    let fx = Fixture::new().await;
    let engine = engine_with(capped(Duration::from_millis(500), 64));
    let started = Instant::now();
    let (result, _) = execute(&engine, "hostile", &fx.ctx(), &[("mode", "loop")]).await;
    assert_eq!(
        result,
        Err(PluginError::Timeout {
            plugin: "hostile".into(),
            limit_ms: 500
        })
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn a_sleeping_plugin_is_killed_by_the_wall_clock_timeout() {
    let fx = Fixture::new().await;
    let engine = engine_with(capped(Duration::from_millis(300), 64));
    let started = Instant::now();
    let (result, _) = execute(&engine, "slow", &fx.ctx(), &[("ms", "2000")]).await;
    assert_eq!(
        result,
        Err(PluginError::Timeout {
            plugin: "slow".into(),
            limit_ms: 300
        })
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn memory_hoarding_is_out_of_memory() {
    let fx = Fixture::new().await;
    for pooling in [true, false] {
        let options = PluginsConfig {
            limits: capped(Duration::from_secs(20), 64),
            pooling,
            ..PluginsConfig::default()
        };
        let engine = PluginEngine::with_options(vec![dist()], options).unwrap();
        let (result, _) = execute(&engine, "hostile", &fx.ctx(), &[("mode", "memory")]).await;
        assert_eq!(
            result,
            Err(PluginError::OutOfMemory {
                plugin: "hostile".into(),
                limit_bytes: 64 << 20
            }),
            "pooling: {pooling}"
        );
        assert_still_works(&engine, &fx).await;
    }
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk() {
    let fx = Fixture::new().await;
    let cache = tempfile::tempdir().unwrap();
    // Each engine is a new process as far as the cache is concerned: the
    // first compiles and stores, the second loads what the first stored.
    for expected in [CacheOutcome::Compiled, CacheOutcome::Hit] {
        let options = PluginsConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            ..PluginsConfig::default()
        };
        let engine = PluginEngine::with_options(vec![dist()], options).unwrap();
        for name in ["noop", "hostile"] {
            let plugin = engine.plugin(name, Role::Executor).unwrap();
            assert_eq!(plugin.loaded.outcome, expected, "{name}");
        }
        assert_still_works(&engine, &fx).await;
    }
}

#[tokio::test]
async fn a_panic_is_a_trap_with_a_backtrace() {
    let fx = Fixture::new().await;
    let engine = engine();
    let (result, _) = execute(&engine, "hostile", &fx.ctx(), &[("mode", "trap")]).await;
    let Err(PluginError::Trap {
        plugin,
        message,
        backtrace,
    }) = result
    else {
        panic!("{result:?}")
    };
    assert_eq!(plugin, "hostile");
    assert!(message.contains("unreachable"), "{message}");
    assert!(
        message.contains("hostile plugin panicked on purpose"),
        "{message}"
    );
    assert!(backtrace.contains("hostile.wasm"), "{backtrace}");
    assert!(backtrace.contains("wasm backtrace"), "{backtrace}");
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn reads_outside_the_project_are_denied_values() {
    let fx = Fixture::new().await;
    let engine = engine();
    let (result, _) = execute(&engine, "hostile", &fx.ctx(), &[("mode", "read-outside")]).await;
    let summary = result.unwrap().summary;
    assert!(
        summary.starts_with("outside: Err(FsError::Denied("),
        "{summary}"
    );
    assert!(
        summary.contains("absolute: Err(FsError::Denied("),
        "{summary}"
    );
    assert!(!summary.contains("secret"), "{summary}");
}

#[tokio::test]
async fn a_command_component_is_refused_before_instantiation() {
    let fx = Fixture::new().await;
    let engine = engine();
    let err = engine
        .executor("wrong-world")
        .err()
        .expect("wrong-world must not load");
    let PluginError::Load(message) = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with(
            "`wrong-world.wasm` is not a lockstep plugin: it exports wasi:cli/run@0.2"
        ),
        "{message}"
    );
    assert!(
        message.ends_with("but not lockstep:plugin/execution (0.1.x or 0.2.x)"),
        "{message}"
    );
    let Err(PluginError::Load(message)) = engine.strategist("wrong-world") else {
        panic!()
    };
    assert!(
        message.ends_with("but not lockstep:plugin/strategy (0.1.x or 0.2.x)"),
        "{message}"
    );
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn lock_probe_acquires_and_releases() {
    let fx = Fixture::new().await;
    let engine = engine();
    let (result, report) = execute(
        &engine,
        "lock-probe",
        &fx.ctx(),
        &[("resource", "db"), ("hold_ms", "10")],
    )
    .await;
    let summary = result.unwrap().summary;
    assert!(
        summary.starts_with("acquired project:projid/res:db token "),
        "{summary}"
    );
    assert_eq!(
        report.leases_released, 0,
        "the plugin dropped its lease itself"
    );
    assert!(fx.locks.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_held_lock_is_a_conflict_value_naming_the_holder() {
    let fx = Fixture::new().await;
    let engine = engine();
    let other = ScopedLocks::new(fx.locks.clone(), Owner::new_session(), "projid", "migrate");
    let lease = other.acquire("db", Duration::from_secs(30)).await.unwrap();
    let (result, _) = execute(&engine, "lock-probe", &fx.ctx(), &[("resource", "db")]).await;
    let summary = result.unwrap().summary;
    assert_eq!(
        summary,
        format!(
            "conflict owner={} operation=migrate resource=project:projid/res:db",
            other.owner().id
        )
    );
    lease.release().await.unwrap();
}

#[tokio::test]
async fn leases_of_a_killed_call_are_released() {
    let fx = Fixture::new().await;
    let engine = engine_with(capped(Duration::from_millis(300), 64));
    let (result, report) = execute(
        &engine,
        "lock-probe",
        &fx.ctx(),
        &[("resource", "db"), ("hold_ms", "5000")],
    )
    .await;
    assert!(
        matches!(result, Err(PluginError::Timeout { .. })),
        "{result:?}"
    );
    assert_eq!(report.leases_released, 1);
    assert!(fx.locks.list().await.unwrap().is_empty());
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn a_cancelled_phase_stops_the_call() {
    let fx = Fixture::new().await;
    let engine = engine();
    let ctx = fx.ctx();
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let (result, _) = execute(&engine, "slow", &ctx, &[("ms", "5000")]).await;
    assert!(
        matches!(result, Err(PluginError::Cancelled(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn a_busy_plugin_yields_so_cancellation_is_prompt() {
    let fx = Fixture::new().await;
    let engine = engine();
    let ctx = fx.ctx();
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let (result, _) = execute(&engine, "hostile", &ctx, &[("mode", "loop")]).await;
    assert!(
        matches!(result, Err(PluginError::Cancelled(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn a_huge_log_is_capped() {
    let fx = Fixture::new().await;
    // 100 000 log calls: what is tested is the cap, not the speed, so the
    // deadline leaves room for a loaded machine.
    let mut policy = LimitsPolicy::default();
    policy.default.timeout = Duration::from_secs(120);
    let engine = engine_with(policy);
    let (result, report) = execute(&engine, "hostile", &fx.ctx(), &[("mode", "huge-log")]).await;
    assert_eq!(result.unwrap().summary, "logged 100000 lines of 1 KiB");
    assert_eq!(report.log.emitted, Limits::DEFAULT.log_lines);
    assert_eq!(report.log.emitted + report.log.dropped, 100_000);
    assert!(report.log.bytes <= Limits::DEFAULT.log_bytes);
}

#[tokio::test]
async fn fuel_runs_out_when_metered() {
    let fx = Fixture::new().await;
    let mut policy = LimitsPolicy::default();
    policy.max.fuel = Some(5_000_000);
    let engine = engine_with(policy);
    let (result, _) = execute(&engine, "hostile", &fx.ctx(), &[("mode", "loop")]).await;
    assert_eq!(
        result,
        Err(PluginError::OutOfFuel {
            plugin: "hostile".into(),
            fuel: 5_000_000
        })
    );
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn transfer_limit_is_typed() {
    let fx = Fixture::new().await;
    let mut policy = LimitsPolicy::default();
    policy.default.transfer_bytes = 1 << 20;
    let engine = engine_with(policy);
    // Two MiB in one result: over the limit before the host copies it.
    let (result, _) = execute(
        &engine,
        "hostile",
        &fx.ctx(),
        &[("mode", "giant-file"), ("mb", "2")],
    )
    .await;
    assert_eq!(
        result,
        Err(PluginError::TransferLimit {
            plugin: "hostile".into(),
            limit_bytes: 1 << 20
        })
    );
    // Under it, the result arrives whole.
    let (result, _) = execute(
        &engine,
        "hostile",
        &fx.ctx(),
        &[("mode", "many-changes"), ("count", "1000")],
    )
    .await;
    assert_eq!(result.unwrap().changes.len(), 1000);
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn lease_floods_are_refused_as_values() {
    let fx = Fixture::new().await;
    let mut policy = LimitsPolicy::default();
    policy.default.lease_handles = 100;
    let engine = engine_with(policy);
    let (result, report) = execute(
        &engine,
        "hostile",
        &fx.ctx(),
        &[("mode", "lease-flood"), ("count", "1000")],
    )
    .await;
    let summary = result.unwrap().summary;
    assert!(
        summary.starts_with("ok 64 refused 936 first Some(LockError::Invalid(\"too many leases held at once (at most 64)"),
        "{summary}"
    );
    assert_eq!(report.leases_released, 64);
    // Released leases keep their handles until dropped: those are capped too.
    let (result, report) = execute(
        &engine,
        "hostile",
        &fx.ctx(),
        &[("mode", "handle-flood"), ("count", "150")],
    )
    .await;
    let summary = result.unwrap().summary;
    assert!(
        summary.starts_with("ok 100 refused 50 first Some(LockError::Invalid(\"too many lease handles open at once (at most 100)"),
        "{summary}"
    );
    assert_eq!(report.leases_released, 0);
    assert!(fx.locks.list().await.unwrap().is_empty());
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn plugin_errors_are_typed() {
    let fx = Fixture::new().await;
    let engine = engine();
    let (result, _) = execute(&engine, "hostile", &fx.ctx(), &[("mode", "nonsense")]).await;
    assert_eq!(
        result,
        Err(PluginError::InvalidInput(
            "unknown mode \"nonsense\"".into()
        ))
    );
    let (result, _) = execute(&engine, "lock-probe", &fx.ctx(), &[]).await;
    assert!(
        matches!(result, Err(PluginError::InvalidInput(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn kinds_and_names_are_checked_at_lookup() {
    let fx = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        dist().join("noop.wasm"),
        dir.path().join("only-strategy.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("only-strategy.toml"),
        "name = \"only-strategy\"\nversion = \"1.0.0\"\nkind = \"strategist\"\napi = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::copy(dist().join("noop.wasm"), dir.path().join("future.wasm")).unwrap();
    std::fs::write(
        dir.path().join("future.toml"),
        "name = \"future\"\nversion = \"1.0.0\"\nkind = \"plugin\"\napi = \"1.0.0\"\n",
    )
    .unwrap();
    let engine = PluginEngine::with_options(
        vec![dir.path().to_path_buf(), dist()],
        PluginsConfig::default(),
    )
    .unwrap();

    let Err(PluginError::Load(m)) = engine.executor("only-strategy") else {
        panic!()
    };
    assert!(m.contains("is a strategist"), "{m}");
    let proposal = engine
        .strategist("only-strategy")
        .unwrap()
        .strategize(&fx.ctx(), &action(&[]))
        .await
        .unwrap();
    assert_eq!(proposal.summary, "noop");

    let Err(PluginError::Load(m)) = engine.strategist("future") else {
        panic!()
    };
    assert!(
        m.contains("declares api = \"1.0.0\"")
            && m.contains(
                "which is newer than this host: it supports lockstep:plugin 0.1.x and 0.2.x"
            ),
        "{m}"
    );

    let Err(PluginError::Load(m)) = engine.strategist("nope") else {
        panic!()
    };
    assert!(m.starts_with("no plugin named `nope`"), "{m}");
    assert!(m.contains("license-header 0.1.0 (plugin)"), "{m}");
}

/// `(component (import "acme:db/query@1.0.0" (instance (export "run" (func)))))`
const UNKNOWN_IMPORT: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0x07, 0x10, 0x01, 0x42, 0x02, 0x01, 0x40, 0x00,
    0x01, 0x00, 0x04, 0x00, 0x03, 0x72, 0x75, 0x6e, 0x01, 0x00, 0x0a, 0x18, 0x01, 0x00, 0x13, 0x61,
    0x63, 0x6d, 0x65, 0x3a, 0x64, 0x62, 0x2f, 0x71, 0x75, 0x65, 0x72, 0x79, 0x40, 0x31, 0x2e, 0x30,
    0x2e, 0x30, 0x05, 0x00,
];

/// ```wat
/// (component
///   (core module $m (func (export "f")))
///   (core instance $ci (instantiate $m))
///   (func $f (canon lift (core func $ci "f")))
///   (instance $i (export "strategize" (func $f)))
///   (export "lockstep:plugin/strategy@1.0.0" (instance $i)))
/// ```
const NEXT_MAJOR: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0x01, 0x2a, 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00,
    0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x07, 0x05, 0x01, 0x01,
    0x66, 0x00, 0x00, 0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, 0x00, 0x09, 0x04, 0x6e, 0x61, 0x6d, 0x65,
    0x00, 0x02, 0x01, 0x6d, 0x02, 0x04, 0x01, 0x00, 0x00, 0x00, 0x07, 0x05, 0x01, 0x40, 0x00, 0x01,
    0x00, 0x06, 0x07, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x66, 0x08, 0x06, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x05, 0x11, 0x01, 0x01, 0x01, 0x00, 0x0a, 0x73, 0x74, 0x72, 0x61, 0x74, 0x65, 0x67,
    0x69, 0x7a, 0x65, 0x01, 0x00, 0x0b, 0x24, 0x01, 0x00, 0x1e, 0x6c, 0x6f, 0x63, 0x6b, 0x73, 0x74,
    0x65, 0x70, 0x3a, 0x70, 0x6c, 0x75, 0x67, 0x69, 0x6e, 0x2f, 0x73, 0x74, 0x72, 0x61, 0x74, 0x65,
    0x67, 0x79, 0x40, 0x31, 0x2e, 0x30, 0x2e, 0x30, 0x05, 0x00, 0x00, 0x00, 0x2e, 0x0e, 0x63, 0x6f,
    0x6d, 0x70, 0x6f, 0x6e, 0x65, 0x6e, 0x74, 0x2d, 0x6e, 0x61, 0x6d, 0x65, 0x01, 0x06, 0x00, 0x11,
    0x01, 0x00, 0x01, 0x6d, 0x01, 0x07, 0x00, 0x12, 0x01, 0x00, 0x02, 0x63, 0x69, 0x01, 0x05, 0x01,
    0x01, 0x00, 0x01, 0x66, 0x01, 0x05, 0x05, 0x01, 0x00, 0x01, 0x69,
];

#[tokio::test]
async fn foreign_imports_and_other_majors_are_named() {
    let fx = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("unknown-import", UNKNOWN_IMPORT),
        ("next-major", NEXT_MAJOR),
    ] {
        std::fs::write(dir.path().join(format!("{name}.wasm")), bytes).unwrap();
        std::fs::write(
            dir.path().join(format!("{name}.toml")),
            format!("name = \"{name}\"\nversion = \"1.0.0\"\nkind = \"plugin\"\napi = \"0.1.0\"\n"),
        )
        .unwrap();
    }
    let engine = PluginEngine::with_options(
        vec![dir.path().to_path_buf(), dist()],
        PluginsConfig::default(),
    )
    .unwrap();

    let Err(PluginError::Load(m)) = engine.strategist("unknown-import") else {
        panic!()
    };
    assert!(
        m.starts_with(
            "`unknown-import.wasm` imports what this host does not provide: acme:db/query@1.0.0"
        ),
        "{m}"
    );

    let Err(PluginError::Load(m)) = engine.strategist("next-major") else {
        panic!()
    };
    assert!(
        m.starts_with("`next-major.wasm` was built against lockstep:plugin@1.0.0"),
        "{m}"
    );
    assert!(
        m.contains("which is newer than this host: it supports lockstep:plugin 0.1.x and 0.2.x"),
        "{m}"
    );

    let info = engine
        .inspect(&dir.path().join("unknown-import.wasm"))
        .unwrap();
    assert_eq!(info.unprovided_imports, vec!["acme:db/query@1.0.0"]);
    assert_still_works(&engine, &fx).await;
}

#[tokio::test]
async fn list_and_inspect_describe_plugins() {
    let engine = engine();
    let list = engine.list();
    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    for name in [
        "hostile",
        "license-header",
        "lock-probe",
        "noop",
        "slow",
        "wrong-world",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    let lh = list.iter().find(|p| p.name == "license-header").unwrap();
    assert_eq!(
        (lh.kind, lh.api.as_deref(), lh.timeout_ms),
        (Some(PluginKind::Plugin), Some("0.2.0"), Some(10_000))
    );

    let info = engine.inspect(Path::new("hostile")).unwrap();
    assert_eq!(info.world, "lockstep:plugin/plugin@0.2.0");
    assert_eq!(info.api.as_deref(), Some("0.2.0"));
    assert!(info
        .exports
        .contains(&"lockstep:plugin/execution@0.2.0".to_string()));
    assert!(info.problems.is_empty(), "{:?}", info.problems);

    let info = engine.inspect(&dist().join("wrong-world.wasm")).unwrap();
    assert!(info.world.starts_with("wasi:cli/command"), "{}", info.world);
    assert_eq!(info.api, None);
    assert_eq!(info.problems.len(), 2, "{:?}", info.problems);
}

/// `reuse_instance = true` keeps one instance for the calls made through
/// one lookup (one phase); a trap drops it. Without it every call starts
/// from a fresh instance.
#[tokio::test(flavor = "multi_thread")]
async fn instances_are_reused_within_a_phase_only_when_asked() {
    let fx = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(dist().join("hostile.wasm"), dir.path().join("hostile.wasm")).unwrap();
    let manifest = std::fs::read_to_string(dist().join("hostile.toml")).unwrap();
    std::fs::write(
        dir.path().join("hostile.toml"),
        manifest.replacen("kind =", "reuse_instance = true\nkind =", 1),
    )
    .unwrap();
    let summaries = |plugin: Arc<WasmPlugin>, modes: &'static [&'static str]| {
        let ctx = fx.ctx();
        async move {
            let mut out = Vec::new();
            for mode in modes {
                let (r, _) = plugin
                    .call(&ctx, Request::Execute(step(&[("mode", mode)])))
                    .await;
                out.push(match r {
                    Ok(Response::Outcome(o)) => o.summary,
                    Ok(other) => panic!("{other:?}"),
                    Err(e) => format!(
                        "error: {}",
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                });
            }
            out
        }
    };
    let reusing =
        PluginEngine::with_options(vec![dir.path().to_path_buf()], PluginsConfig::default())
            .unwrap();
    let plugin = reusing.plugin("hostile", Role::Executor).unwrap();
    let got = summaries(plugin, &["count", "count", "count", "trap", "count"]).await;
    assert_eq!(got[..3], ["call 1", "call 2", "call 3"]);
    assert!(got[3].starts_with("error"), "{got:?}");
    assert_eq!(got[4], "call 1", "a trap drops the kept instance");
    // A new lookup (a new phase) starts afresh.
    let plugin = reusing.plugin("hostile", Role::Executor).unwrap();
    assert_eq!(summaries(plugin, &["count"]).await, ["call 1"]);
    // The default: a fresh instance per call.
    let plugin = engine().plugin("hostile", Role::Executor).unwrap();
    assert_eq!(
        summaries(plugin, &["count", "count"]).await,
        ["call 1", "call 1"]
    );
}
