#![allow(missing_docs)] // a bench binary

//! `just compare`: each figure measured beside its baseline in the same run,
//! printed with the ratio and the goal.
//!
//! | figure | baseline |
//! |---|---|
//! | lock acquire+release, SQLite | the same SQL statements through sqlx |
//! | lock acquire+release, PostgreSQL | the same two statements sent by `pgbench -M prepared` (the client floor), in rounds alternating with ours |
//! | Rust plugin instantiate + call through lockstep | a bare wasmtime harness, same component |
//! | plugin call on a kept instance | the `extism` crate calling an equivalent Extism plugin |
//! | plugin instantiate + call | extism: a new plugin from the compiled module + call |
//! | full four-phase lifecycle (`new_plan` + `run_plan`), one-step no-op plugins, SQLite | (plans/s) |
//! | JS / Python plugin: load from cache + first call | cold compile + first call |
//!
//! Each figure is the median of many timed runs after a warm-up. Every goal
//! is a value (`Goal`), printed as `≤ N×`, `≤ N ms` or `≥ N plans/s`; with
//! `--check` (`./dev compare --check`) the run exits non-zero when one is
//! missed, naming it.

#[path = "support/raw_locks.rs"]
mod raw_locks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep::db::{Backend, Db};
use lockstep::lifecycle::{PluginContext, PluginProvider};
use lockstep::locks::{LockService, Owner, ScopedLocks};
use lockstep::model::{Action, Step};
use lockstep::plugins::{PluginEngine, PluginsConfig};
use lockstep::workspace::ProjectView;
use lockstep::{Config, Container};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod bare {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit/v0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

const TTL: Duration = Duration::from_secs(60);

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time<F, Fut>(iterations: usize, f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if iterations == 0 {
        return Duration::ZERO;
    }
    median(samples(iterations, f).await)
}

/// `iterations` timed runs of `f` after a tenth as many untimed ones.
async fn samples<F, Fut>(iterations: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..iterations.div_ceil(10) {
        f().await;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        f().await;
        samples.push(started.elapsed());
    }
    samples
}

/// What a figure must reach; a row may carry several (all must hold).
#[derive(Clone, Copy)]
enum Goal {
    /// At most this many times the baseline.
    Ratio(f64),
    /// At most this long.
    Within(Duration),
    /// At least this many per second (the value is the time of one).
    Rate(f64, &'static str),
    /// At most this many commits and round trips per plan.
    PerPlan(f64, f64),
}

impl Goal {
    fn met(&self, row: &Row) -> bool {
        match *self {
            Goal::Ratio(most) => row.ratio().is_some_and(|r| r <= most),
            Goal::Within(most) => row.value <= most,
            Goal::Rate(least, _) => 1.0 / row.value.as_secs_f64() >= least,
            Goal::PerPlan(commits, round_trips) => row
                .counts
                .is_some_and(|(c, r)| c <= commits && r <= round_trips),
        }
    }
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Goal::Ratio(most) => write!(f, "≤ {most}×"),
            Goal::Within(most) => write!(f, "≤ {}", us(*most)),
            Goal::Rate(least, unit) => write!(f, "≥ {least} {unit}"),
            Goal::PerPlan(commits, round_trips) => write!(f, "≤ {commits} / ≤ {round_trips}"),
        }
    }
}

struct Row {
    figure: String,
    value: Duration,
    /// Shown instead of `value` (counts rather than a time).
    text: Option<String>,
    /// Commits and round trips per plan, for a `Goal::PerPlan`.
    counts: Option<(f64, f64)>,
    baseline: Option<(String, Duration)>,
    goals: Vec<Goal>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .map(|(_, b)| self.value.as_secs_f64() / b.as_secs_f64())
    }

    fn goal(&self) -> String {
        let goals: Vec<String> = self.goals.iter().map(|g| g.to_string()).collect();
        goals.join(", ")
    }

    fn missed(&self) -> Vec<Goal> {
        self.goals
            .iter()
            .filter(|g| !g.met(self))
            .copied()
            .collect()
    }
}

fn us(d: Duration) -> String {
    if d >= Duration::from_millis(1) {
        format!("{} ms", trim(d.as_secs_f64() * 1e3))
    } else {
        format!("{} µs", trim(d.as_secs_f64() * 1e6))
    }
}

/// One decimal, without a trailing `.0` (goals read `≤ 10 ms`).
fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// The floor of the PostgreSQL lock path: the acquire and release statements
/// `LockService` sends, run by `pgbench -M prepared` on one connection, each
/// committing on its own as ours do, `transactions` times. Returns every
/// transaction's latency (pgbench's per-transaction log), so that the floor
/// is a median like our figure.
fn pgbench_floor(url: &str, transactions: usize) -> Result<Vec<Duration>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let script = dir.path().join("locks.sql");
    std::fs::write(
        &script,
        raw_locks::pgbench_script(Backend::Postgres.now_ms()),
    )
    .map_err(|e| e.to_string())?;
    let prefix = dir.path().join("latency");
    let output = std::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c", "1", "-l"])
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg(format!("--transactions={transactions}"))
        .arg("-f")
        .arg(&script)
        .arg(url)
        .output()
        .map_err(|e| format!("pgbench: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // One log file (`latency.PID`): `client transaction latency_us …` per line.
    let mut samples = Vec::with_capacity(transactions);
    for entry in std::fs::read_dir(dir.path()).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("latency"))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        samples.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
                .map(Duration::from_micros),
        );
    }
    if samples.is_empty() {
        return Err(format!(
            "no per-transaction log from pgbench: {}",
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    Ok(samples)
}

/// Our PostgreSQL lock path and pgbench's floor, measured in alternating
/// rounds so that both see the same server and disk (the time of a durable
/// commit on this machine drifts by tens of percent within minutes): the
/// medians of all rounds' samples.
async fn interleaved_pg(
    service: &LockService,
    owner: &Owner,
    url: &str,
) -> Result<(Duration, Duration), String> {
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        ours.extend(samples(400, || acquire_release(service, owner)).await);
        floor.extend(pgbench_floor(url, 800)?);
    }
    Ok((median(ours), median(floor)))
}

async fn acquire_release(service: &LockService, owner: &Owner) {
    let g = service
        .try_acquire("cmp:svc", owner, "bench", TTL)
        .await
        .unwrap();
    service.release("cmp:svc", owner, g.token).await.unwrap();
}

async fn lock_rows(url: &str, name: &str, rows: &mut Vec<Row>) {
    let db = match Db::connect(url).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("skipping {name}: {e}");
            return;
        }
    };
    let service = LockService::new(db.clone());
    let owner = Owner::new_session();
    let (ours, baseline_name, baseline, goal) = match db.backend {
        Backend::Sqlite => (
            time(2000, || acquire_release(&service, &owner)).await,
            "the same SQL through sqlx",
            {
                let raw = raw_locks::raw_pool(url, db.backend).await;
                time(2000, || raw_locks::acquire_release(&raw, &owner, "cmp:raw")).await
            },
            1.3,
        ),
        Backend::Postgres => match interleaved_pg(&service, &owner, url).await {
            Ok((ours, floor)) => (
                ours,
                "the same two statements, pgbench -M prepared, alternating rounds",
                floor,
                1.5,
            ),
            Err(e) => {
                eprintln!("skipping {name}: {e}");
                return;
            }
        },
    };
    rows.push(Row {
        figure: format!("lock acquire+release, {name}"),
        value: ours,
        text: None,
        counts: None,
        baseline: Some((baseline_name.into(), baseline)),
        goals: vec![Goal::Ratio(goal)],
    });
}

struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A minimal wasmtime embedding calling `execute` on a fresh instance.
async fn bare_harness(component: &Path, iterations: usize) -> Duration {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let component = wasmtime::component::Component::from_file(&engine, component).unwrap();
    let mut linker: Linker<BareState> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    linker.instance("lockstep:plugin/types@0.1.0").unwrap();
    let pre = bare::PluginPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let step = bare::lockstep::plugin::types::Step {
        id: "noop".into(),
        title: "noop".into(),
        params: vec![],
        targets: vec![],
    };
    time(iterations, || async {
        let mut store = wasmtime::Store::new(
            &engine,
            BareState {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        let plugin = pre.instantiate_async(&mut store).await.unwrap();
        plugin
            .lockstep_plugin_execution()
            .call_execute(&mut store, "bench", &step)
            .await
            .unwrap()
            .unwrap();
    })
    .await
}

/// The median call of the extism baseline (`bench/extism`, a separate
/// workspace because it brings another wasmtime major), run on
/// `dist/extism/noop.wasm` in this same run. `just compare` builds both.
fn extism_baseline(dist: &Path, iterations: usize) -> Result<(Duration, Option<Duration>), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = std::env::var_os("LOCKSTEP_EXTISM_BASELINE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/extism/release/extism-baseline"));
    let plugin = dist.join("extism/noop.wasm");
    for needed in [&binary, &plugin] {
        if !needed.is_file() {
            return Err(format!(
                "{} is missing (run `just compare`)",
                needed.display()
            ));
        }
    }
    let output = std::process::Command::new(&binary)
        .arg("--plugin")
        .arg(&plugin)
        .arg("--iterations")
        .arg(iterations.to_string())
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let line = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("unexpected output `{}`: {e}", line.trim()))?;
    let call = report["call_median_ns"]
        .as_u64()
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("no call_median_ns in `{}`", line.trim()))?;
    let fresh = report["new_from_compiled_and_call_median_ns"]
        .as_u64()
        .map(Duration::from_nanos);
    Ok((call, fresh))
}

fn context(dir: &Path, locks: LockService) -> PluginContext {
    PluginContext {
        plan_id: "bench".into(),
        project: Arc::new(ProjectView::new(dir).unwrap()),
        locks: ScopedLocks::new(locks, Owner::new_session(), "bench", "bench"),
        cancel: CancellationToken::new(),
        progress: None,
    }
}

fn step() -> Step {
    Step {
        id: "noop".into(),
        title: "noop".into(),
        params: Default::default(),
        targets: vec![],
    }
}

/// Whether the section `name` runs: every section, unless an argument
/// (`cargo bench --bench compare -- lifecycle`) names some.
fn wanted(name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    filters.is_empty()
        || filters
            .iter()
            .any(|f| name.contains(f.as_str()) || f.contains(name))
}

/// The full lifecycle (new, then strategize, execute and apply under one
/// plan lock: `run_plan`, as for a plan whose apply needs no review) of
/// one-step `noop` plans on SQLite, one after another in one session:
/// plans/s, and the
/// database commits and round trips per plan when the bench is built with
/// the `db-stats` feature (`./dev compare` does).
async fn lifecycle_rows(dist: &Path, dir: &Path, rows: &mut Vec<Row>) {
    let project = dir.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let mut config = Config::for_project(&project);
    config.plugin_dirs = vec![dist.to_path_buf()];
    let container = Container::build(config).await.unwrap();
    let session = container.lifecycle();
    let action = Action {
        name: "noop".into(),
        strategy: "noop".into(),
        executor: "noop".into(),
        params: Default::default(),
    };
    let plans = 1000;
    let before = lockstep::db::stats::snapshot();
    let started = Instant::now();
    for _ in 0..plans {
        let plan = session.new_plan(action.clone(), &project).await.unwrap();
        session.run_plan(&plan.id).await.unwrap();
    }
    let per_plan = started.elapsed() / plans;
    let counts = lockstep::db::stats::snapshot()
        .zip(before)
        .map(|(a, b)| a.since(b));
    rows.push(Row {
        figure: format!(
            "full lifecycle, noop, SQLite, run_plan: three phases, one lock ({:.0} plans/s)",
            1.0 / per_plan.as_secs_f64()
        ),
        value: per_plan,
        text: None,
        counts: None,
        baseline: None,
        goals: vec![Goal::Rate(500.0, "plans/s")],
    });
    let per_plan_counts = counts.map(|c| {
        (
            c.commits as f64 / f64::from(plans),
            c.round_trips as f64 / f64::from(plans),
        )
    });
    let text = match per_plan_counts {
        Some((commits, round_trips)) => format!("{commits:.1} / {round_trips:.1}"),
        None => "(build with --features db-stats)".into(),
    };
    rows.push(Row {
        figure: "SQLite commits / round trips per plan (full lifecycle, run_plan)".into(),
        value: Duration::ZERO,
        text: Some(text),
        counts: per_plan_counts,
        baseline: None,
        goals: vec![Goal::PerPlan(6.0, 12.0)],
    });
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and
    // a test run only checks that this builds.
    if !std::env::args().any(|a| a == "--bench") {
        println!("compare: run with `just compare` (cargo bench --bench compare)");
        return;
    }
    let dist = lockstep_test_artifacts::dist();
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();

    if wanted("lock") {
        lock_rows(
            &format!("sqlite://{}", dir.path().join("cmp.db").display()),
            "SQLite",
            &mut rows,
        )
        .await;
        let pg = std::env::var("LOCKSTEP_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        lock_rows(&pg, "PostgreSQL", &mut rows).await;
    }

    // Rust plugin: instantiate + call through lockstep, beside a bare harness.
    let plugins = wanted("plugin");
    let db = Db::connect(&format!(
        "sqlite://{}",
        dir.path().join("plugins.db").display()
    ))
    .await
    .unwrap();
    let engine = PluginEngine::with_options(vec![dist.clone()], PluginsConfig::default()).unwrap();
    let ctx = context(dir.path(), LockService::new(db));
    let executor = engine.executor("noop").unwrap();
    let step = step();
    let iterations = if plugins { 3000 } else { 0 };
    let ours = time(iterations, || async {
        executor.execute(&ctx, &step).await.unwrap();
    })
    .await;
    let bare = if plugins {
        bare_harness(&dist.join("noop.wasm"), iterations).await
    } else {
        Duration::ZERO
    };
    if plugins {
        rows.push(Row {
            figure: "Rust plugin instantiate + call (noop)".into(),
            value: ours,
            text: None,
            counts: None,
            baseline: Some(("bare wasmtime harness".into(), bare)),
            goals: vec![Goal::Ratio(2.0), Goal::Within(Duration::from_micros(50))],
        });
    }

    // Plugin call overhead beside the extism crate calling an equivalent
    // Extism plugin. Extism keeps one instance across calls, so the like for
    // like figure is a call on an instance this host keeps too (a manifest
    // with `reuse_instance = true` over the same component); the default
    // fresh instance per call is shown beside it.
    let reuse_dir = dir.path().join("reuse");
    std::fs::create_dir_all(&reuse_dir).unwrap();
    std::fs::copy(dist.join("noop.wasm"), reuse_dir.join("noop.wasm")).unwrap();
    let manifest = std::fs::read_to_string(dist.join("noop.toml")).unwrap();
    std::fs::write(
        reuse_dir.join("noop.toml"),
        manifest.replace("[limits]", "reuse_instance = true\n\n[limits]"),
    )
    .unwrap();
    let reuse_engine =
        PluginEngine::with_options(vec![reuse_dir], PluginsConfig::default()).unwrap();
    let warm_executor = reuse_engine.executor("noop").unwrap();
    let reused = time(if plugins { 20_000 } else { 0 }, || async {
        warm_executor.execute(&ctx, &step).await.unwrap();
    })
    .await;
    match extism_baseline(&dist, 20_000).and_then(|r| {
        if plugins {
            Ok(r)
        } else {
            Err("not asked for".into())
        }
    }) {
        Ok((call, fresh)) => {
            rows.push(Row {
                figure: "plugin call, instance kept (noop)".into(),
                value: reused,
                text: None,
                counts: None,
                baseline: Some(("extism: call on a loaded plugin".into(), call)),
                goals: vec![Goal::Ratio(1.0)],
            });
            if let Some(fresh) = fresh {
                rows.push(Row {
                    figure: "plugin instantiate + call (noop, the default)".into(),
                    value: ours,
                    text: None,
                    counts: None,
                    baseline: Some((
                        "extism: new plugin from the compiled module + call".into(),
                        fresh,
                    )),
                    goals: vec![Goal::Ratio(1.0)],
                });
            }
        }
        Err(e) => eprintln!("skipping the extism comparison: {e}"),
    }

    // Full lifecycle, SQLite, one-step no-op plugins.
    if wanted("lifecycle") {
        lifecycle_rows(&dist, dir.path(), &mut rows).await;
    }

    // Python / JavaScript: load from the disk cache + first call, beside a cold compile + first call.
    for (name, goal_ms) in [("json-format", 3), ("trailing-whitespace", 10)] {
        if !wanted("load") {
            break;
        }
        if !dist.join(format!("{name}.wasm")).is_file() {
            eprintln!("skipping {name}: not built");
            continue;
        }
        let cache = tempfile::tempdir().unwrap();
        let first_call = |cache_dir: Option<PathBuf>| {
            let dist = dist.clone();
            let ctx = &ctx;
            async move {
                let options = PluginsConfig {
                    cache_dir,
                    pooling: false,
                    ..Default::default()
                };
                let engine = PluginEngine::with_options(vec![dist], options).unwrap();
                let started = Instant::now();
                let strategist = engine.strategist(name).unwrap();
                let action = Action {
                    name: name.into(),
                    strategy: name.into(),
                    executor: name.into(),
                    params: Default::default(),
                };
                let _ = strategist.strategize(ctx, &action).await;
                started.elapsed()
            }
        };
        let cold = first_call(None).await;
        first_call(Some(cache.path().to_path_buf())).await; // fill the cache
        let mut warm = Vec::new();
        for _ in 0..5 {
            warm.push(first_call(Some(cache.path().to_path_buf())).await);
        }
        rows.push(Row {
            figure: format!("{name}: load from cache + first call"),
            value: median(warm),
            text: None,
            counts: None,
            baseline: Some(("cold compile + first call".into(), cold)),
            goals: vec![Goal::Within(Duration::from_millis(goal_ms))],
        });
    }

    println!("\n| figure | lockstep | baseline | ratio | goal |\n|---|---|---|---|---|");
    for row in &rows {
        let baseline = row
            .baseline
            .as_ref()
            .map(|(n, d)| format!("{} ({n})", us(*d)))
            .unwrap_or_else(|| "—".into());
        let ratio = row
            .ratio()
            .map(|r| format!("{r:.2}×"))
            .unwrap_or_else(|| "—".into());
        println!(
            "| {} | {} | {} | {} | {} |",
            row.figure,
            row.text.clone().unwrap_or_else(|| us(row.value)),
            baseline,
            ratio,
            row.goal()
        );
    }
    let missed: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            row.missed()
                .into_iter()
                .map(move |g| format!("{}: {g}", row.figure))
        })
        .collect();
    for m in &missed {
        println!("missed: {m}");
    }
    if std::env::args().any(|a| a == "--check") && !missed.is_empty() {
        std::process::exit(1);
    }
}
