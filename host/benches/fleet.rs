#![allow(missing_docs)] // a bench binary

//! `just bench-fleet`: the worker fleet, River-style. N `noop` plans
//! (auto-apply, each on a project of its own so nothing serialises them)
//! are submitted, then W in-process workers burn the queue down, printing
//! plans/s every 2 s; then the idle pickup latency (submit → the first
//! attempt starts, database clock) over 100 single submissions. Writes
//! `docs/perf/fleet-<backend>.csv`.
//!
//! With `FLEET_PROCESSES` (comma list, default `2` on SQLite and none on
//! PostgreSQL; `0` for none), the same burn-down runs again with that many
//! `lockstep worker` processes instead of in-process workers: the
//! single-machine set-up of several processes on one SQLite file.
//!
//! Environment: `FLEET_PLANS` (default 1000), `FLEET_WORKERS` (comma list,
//! default `1,2,4`), `FLEET_CONCURRENCY` per worker (default 8),
//! `FLEET_PROCESSES`, `FLEET_BACKENDS`, `LOCKSTEP_BENCH_POSTGRES_URL`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep::fleet::{self, Submission, Worker, WorkerOptions};
use lockstep::model::Action;
use lockstep::{Config, Container};
use tokio_util::sync::CancellationToken;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn noop() -> Action {
    Action {
        name: "noop".into(),
        strategy: "noop".into(),
        executor: "noop".into(),
        params: Default::default(),
    }
}

async fn container(url: &str, root: &Path, dist: &Path) -> Container {
    let mut config = Config::for_project(root);
    config.database_url = Some(url.to_string());
    config.plugin_dirs = vec![dist.to_path_buf()];
    config.project_plugins = false;
    config.lifecycle.lock_ttl = Duration::from_secs(30);
    Container::build(config).await.expect("container")
}

async fn submit_all(c: &Container, root: &Path, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let project = root.join(format!("p{i}"));
        std::fs::create_dir_all(&project).unwrap();
        let s = Submission {
            auto_apply: true,
            ..Submission::new(noop(), project)
        };
        ids.push(fleet::submit(c, s).await.expect("submit").plan_id);
    }
    ids
}

async fn remaining(c: &Container) -> i64 {
    fleet::pending(c).await.expect("queue depth") as i64
}

/// Where the workers of a burn-down run.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Tasks of the bench's own process, sharing its container.
    InProcess,
    /// `lockstep worker` processes on the same database.
    Processes,
}

/// Running workers of either mode.
enum Workers {
    Tasks(CancellationToken, Vec<tokio::task::JoinHandle<()>>),
    Processes(Vec<std::process::Child>),
}

impl Workers {
    fn start(c: &Arc<Container>, mode: Mode, w: usize, concurrency: usize, root: &Path) -> Self {
        match mode {
            Mode::InProcess => {
                let (stop, handles) = start_workers(c, w, concurrency, root);
                Workers::Tasks(stop, handles)
            }
            Mode::Processes => Workers::Processes(
                (0..w)
                    .map(|_| worker_process(c, concurrency, root))
                    .collect(),
            ),
        }
    }

    /// Stop them (SIGTERM for processes) and wait.
    async fn stop(self) {
        match self {
            Workers::Tasks(stop, handles) => {
                stop.cancel();
                for h in handles {
                    h.await.unwrap();
                }
            }
            Workers::Processes(children) => {
                for mut child in children {
                    let _ = std::process::Command::new("kill")
                        .arg(child.id().to_string())
                        .status();
                    let status = child.wait().expect("worker process");
                    assert!(status.success(), "worker process ended with {status}");
                }
            }
        }
    }
}

/// A `lockstep worker` process (this package's binary) on `c`'s database.
fn worker_process(c: &Container, concurrency: usize, root: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .arg("--database-url")
        .arg(c.config().database_url())
        .arg("--project")
        .arg(root)
        .env("LOCKSTEP_PLUGIN_PATH", lockstep_test_artifacts::dist())
        .args(["worker", "--ttl", "30s", "--poll", "200ms"])
        .arg("--concurrency")
        .arg(concurrency.to_string())
        .arg("--projects-root")
        .arg(root)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("lockstep worker")
}

fn start_workers(
    c: &Arc<Container>,
    w: usize,
    concurrency: usize,
    root: &Path,
) -> (CancellationToken, Vec<tokio::task::JoinHandle<()>>) {
    let stop = CancellationToken::new();
    let handles = (0..w)
        .map(|_| {
            let worker = Worker::new(
                c.clone(),
                WorkerOptions {
                    concurrency,
                    projects_roots: vec![root.to_path_buf()],
                    poll: Duration::from_millis(200),
                    ..WorkerOptions::default()
                },
            );
            let stop = stop.clone();
            tokio::spawn(async move {
                worker.run(stop).await.expect("worker");
            })
        })
        .collect();
    (stop, handles)
}

/// Burn `n` plans down with `w` workers; plans/s end to end, and the
/// commits and round trips per plan (with the `db-stats` feature, for
/// in-process workers).
async fn burn_down(
    c: &Arc<Container>,
    root: &Path,
    n: usize,
    (mode, w): (Mode, usize),
    concurrency: usize,
) -> (f64, Option<(f64, f64)>) {
    let t = Instant::now();
    submit_all(c, root, n).await;
    eprintln!(
        "  submitted {n} plans in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    analyze(c).await;
    let counted = lockstep::db::stats::snapshot();
    let workers = Workers::start(c, mode, w, concurrency, root);
    let start = Instant::now();
    let mut last = (start, n as i64);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left = remaining(c).await;
        if last.0.elapsed() >= Duration::from_secs(2) || left == 0 {
            let rate = (last.1 - left) as f64 / last.0.elapsed().as_secs_f64();
            eprintln!(
                "  {:>5.1} s  {left:>6} left  {rate:>7.1} plans/s",
                start.elapsed().as_secs_f64()
            );
            last = (Instant::now(), left);
        }
        if left == 0 {
            break;
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    workers.stop().await;
    // Workers' requests from claim to applied (with the bench's own
    // queue-depth polls, a few per second).
    let per_plan = lockstep::db::stats::snapshot()
        .zip(counted)
        .map(|(now, then)| now.since(then))
        .map(|d| (d.commits as f64 / n as f64, d.round_trips as f64 / n as f64))
        .filter(|_| mode == Mode::InProcess);
    (rate, per_plan)
}

/// PostgreSQL: gather the planner's statistics after the burst of
/// submissions. A queue in service has them (autovacuum analyzes a table
/// once a tenth of it changed); a database created a second ago and filled
/// with 1000 rows has none until autovacuum's next round (up to a minute),
/// and the claim's plan meanwhile scans as if the tables were empty. The
/// figures are for a queue in service.
async fn analyze(c: &Container) {
    let url = c.config().database_url();
    if url.starts_with("postgres") {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("PostgreSQL");
        conn.execute("ANALYZE plan_queue, plans, locks")
            .await
            .expect("ANALYZE");
    }
}

/// Idle pickup: one worker waiting; submit one plan at a time.
async fn pickup(c: &Arc<Container>, root: &Path, trials: usize) -> Vec<Duration> {
    let (stop, handles) = start_workers(c, 1, 1, root);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = Vec::new();
    for i in 0..trials {
        let project = root.join(format!("pickup{i}"));
        std::fs::create_dir_all(&project).unwrap();
        let s = Submission {
            auto_apply: true,
            ..Submission::new(noop(), project)
        };
        let id = fleet::submit(c, s).await.unwrap().plan_id;
        let submitted = fleet::entry(c, &id).await.unwrap().submitted_at;
        let started = loop {
            if let Some(a) = fleet::attempts(c, &id).await.unwrap().first() {
                break a.started_at;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        samples.push(Duration::from_millis((started - submitted).max(0) as u64));
        while !fleet::entry(c, &id).await.unwrap().done {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Idle again: let the worker go back to waiting.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for h in handles {
        h.await.unwrap();
    }
    samples.sort();
    samples
}

/// A fresh database for one run: a SQLite file in `dir`, or a new
/// PostgreSQL database on the server of `pg` (dropped by [`drop_db`]).
async fn fresh_db(backend: &str, pg: &str, dir: &Path) -> (String, Option<String>) {
    use sqlx::{Connection, Executor};
    if backend == "sqlite" {
        return (format!("sqlite://{}/fleet.db", dir.display()), None);
    }
    let name = format!(
        "lockstep_fleet_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut conn = sqlx::PgConnection::connect(pg).await.expect("PostgreSQL");
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .unwrap();
    let base = pg.rsplit_once('/').map(|(b, _)| b).unwrap_or(pg);
    (format!("{base}/{name}"), Some(name))
}

async fn drop_db(pg: &str, name: Option<String>) {
    use sqlx::{Connection, Executor};
    if let Some(name) = name {
        let mut conn = sqlx::PgConnection::connect(pg).await.expect("PostgreSQL");
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
            .await;
    }
}

async fn run_backend(name: &str, pg: &str, csv: &mut String, quick: bool) {
    let dist = lockstep_test_artifacts::dist();
    let plans: usize = env_or("FLEET_PLANS", if quick { 20 } else { 1000 });
    let concurrency: usize = env_or("FLEET_CONCURRENCY", 8);
    let workers: Vec<(Mode, usize)> = std::env::var("FLEET_WORKERS")
        .unwrap_or_else(|_| if quick { "1" } else { "1,2,4" }.into())
        .split(',')
        .filter_map(|w| w.parse().ok())
        .map(|w| (Mode::InProcess, w))
        .collect();
    let processes = std::env::var("FLEET_PROCESSES")
        .unwrap_or_else(|_| if name == "sqlite" && !quick { "2" } else { "" }.into());
    let runs = workers.into_iter().chain(
        processes
            .split(',')
            .filter_map(|p| p.parse().ok())
            .map(|p| (Mode::Processes, p)),
    );
    // `0` means none of that kind: no workers would leave the burn-down
    // waiting forever.
    let runs = runs.filter(|&(_, w)| w > 0);
    for (mode, w) in runs {
        let label = match mode {
            Mode::InProcess => "burn_down",
            Mode::Processes => "burn_down_processes",
        };
        let dir = tempfile::tempdir().unwrap();
        let (url, db) = fresh_db(name, pg, dir.path()).await;
        let c = Arc::new(container(&url, dir.path(), &dist).await);
        eprintln!("{name}: {plans} plans, {w} worker(s) × {concurrency} ({label})");
        let (rate, per_plan) = burn_down(&c, dir.path(), plans, (mode, w), concurrency).await;
        eprintln!("{name}: {rate:.1} plans/s ({:.1} phases/s)", rate * 3.0);
        writeln!(csv, "{name},{label},{w},{concurrency},{plans},{rate:.1}").unwrap();
        if let Some((commits, trips)) = per_plan {
            eprintln!("{name}: {commits:.1} commits, {trips:.1} round trips per plan");
            writeln!(
                csv,
                "{name},commits_per_plan,{w},{concurrency},{plans},{commits:.1}"
            )
            .unwrap();
            writeln!(
                csv,
                "{name},round_trips_per_plan,{w},{concurrency},{plans},{trips:.1}"
            )
            .unwrap();
        }
        drop(c);
        drop_db(pg, db).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let (url, db) = fresh_db(name, pg, dir.path()).await;
    let c = Arc::new(container(&url, dir.path(), &dist).await);
    let s = pickup(&c, dir.path(), if quick { 5 } else { 100 }).await;
    let (p50, p99) = (s[s.len() / 2], s[s.len() * 99 / 100]);
    eprintln!("{name}: idle pickup p50 {p50:?}, p99 {p99:?}");
    writeln!(csv, "{name},pickup_p50_ms,1,1,100,{}", p50.as_millis()).unwrap();
    writeln!(csv, "{name},pickup_p99_ms,1,1,100,{}", p99.as_millis()).unwrap();
    drop(c);
    drop_db(pg, db).await;
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs bench targets once in test mode: keep it short.
    let full = std::env::args().any(|a| a == "--bench");
    let out: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/perf");
    let pg = std::env::var("LOCKSTEP_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let only = std::env::var("FLEET_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    for name in ["sqlite", "postgres"] {
        if !only.split(',').any(|b| b == name) {
            continue;
        }
        let mut csv = String::from("backend,figure,workers,concurrency,plans,value\n");
        run_backend(name, &pg, &mut csv, !full).await;
        if full {
            std::fs::write(out.join(format!("fleet-{name}.csv")), csv).unwrap();
        }
    }
}
