#![allow(missing_docs)] // a bench binary

//! `just scale`: how costs grow. Writes `docs/perf/scale-*.csv`, which
//! `docs/perf/plot.py` turns into PNG charts.
//!
//! - lock acquire+release with 10, 10 000 and 1 000 000 rows in `locks`
//!   (SQLite and PostgreSQL) — should be flat;
//! - a full lifecycle against the number of steps — should be linear;
//! - apply against the number of bytes changed — should be linear.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lockstep::db::{Backend, Db};

#[path = "support/raw_locks.rs"]
#[allow(dead_code)]
mod raw_locks;
use lockstep::locks::{LockService, Owner};
use lockstep::model::Action;
use lockstep::{Config, Container};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn fill_locks(db: &raw_locks::Raw, rows: i64) {
    sqlx::query("DELETE FROM locks WHERE resource LIKE 'fill:%'")
        .execute(&db.pool)
        .await
        .unwrap();
    let sql = match db.backend {
        Backend::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
             INSERT INTO locks (resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at)
             SELECT 'fill:' || i, 'filler', i, 'fill', 'h', 1, 'u', 1, 0, 4102444800000 FROM n"
        }
        Backend::Postgres => {
            "INSERT INTO locks (resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at)
             SELECT 'fill:' || i, 'filler', i, 'fill', 'h', 1, 'u', 1, 0, 4102444800000 FROM generate_series(1, $1) AS i"
        }
    };
    sqlx::query(sql).bind(rows).execute(&db.pool).await.unwrap();
    if db.backend == Backend::Postgres {
        sqlx::query("ANALYZE locks")
            .execute(&db.pool)
            .await
            .unwrap();
    }
}

async fn locks_scale(url: &str, name: &str, csv: &mut String) {
    let Ok(db) = Db::connect(url).await else {
        eprintln!("skipping {name}");
        return;
    };
    let raw = raw_locks::raw_pool(url, db.backend).await;
    let service = LockService::new(db.clone());
    let owner = Owner::new_session();
    for rows in [10i64, 10_000, 1_000_000] {
        fill_locks(&raw, rows).await;
        let mut samples = Vec::new();
        for i in 0..600 {
            let started = Instant::now();
            let g = service
                .try_acquire("scale:r", &owner, "scale", Duration::from_secs(60))
                .await
                .unwrap();
            service.release("scale:r", &owner, g.token).await.unwrap();
            if i >= 100 {
                samples.push(started.elapsed());
            }
        }
        let m = median(samples);
        println!("locks {name} rows={rows}: {m:?}");
        writeln!(csv, "{name},{rows},{}", m.as_secs_f64() * 1e6).unwrap();
    }
    fill_locks(&raw, 0).await;
}

async fn container(project: &Path, dist: &Path) -> Container {
    let mut config = Config::for_project(project);
    config.plugin_dirs = vec![dist.to_path_buf()];
    config.database_url = Some(format!(
        "sqlite://{}",
        project.parent().unwrap().join("scale.db").display()
    ));
    Container::build(config).await.unwrap()
}

fn action(plugin: &str, params: &[(&str, String)]) -> Action {
    Action {
        name: plugin.into(),
        strategy: plugin.into(),
        executor: plugin.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale: run with `just scale` (cargo bench --bench scale)");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dist = lockstep_test_artifacts::dist();
    let out = root.join("docs/perf");
    std::fs::create_dir_all(&out).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let mut csv = String::from("backend,rows,acquire_release_us\n");
    locks_scale(
        &format!("sqlite://{}", dir.path().join("locks.db").display()),
        "sqlite",
        &mut csv,
    )
    .await;
    let pg = std::env::var("LOCKSTEP_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    locks_scale(&pg, "postgres", &mut csv).await;
    std::fs::write(out.join("scale-locks.csv"), csv).unwrap();

    // Lifecycle against steps (the `slow` fixture with 0 ms per step writes one file per step).
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let c = container(&project, &dist).await;
    let s = c.lifecycle();
    let mut csv = String::from("steps,lifecycle_ms\n");
    for steps in [1usize, 10, 50, 100, 200, 400] {
        let mut samples = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let plan = s
                .new_plan(
                    action("slow", &[("steps", steps.to_string()), ("ms", "0".into())]),
                    &project,
                )
                .await
                .unwrap();
            s.strategize_plan(&plan.id).await.unwrap();
            s.execute_plan(&plan.id).await.unwrap();
            s.apply_plan(&plan.id).await.unwrap();
            samples.push(started.elapsed());
            let _ = std::fs::remove_dir_all(project.join("slow"));
        }
        let m = median(samples);
        println!("lifecycle steps={steps}: {m:?}");
        writeln!(csv, "{steps},{}", m.as_secs_f64() * 1e3).unwrap();
    }
    std::fs::write(out.join("scale-steps.csv"), csv).unwrap();

    // Apply against bytes (one file of `mb` MiB from the `hostile` fixture's giant-file mode).
    let mut csv = String::from("mib,apply_ms\n");
    for mb in [1u64, 2, 4, 8, 16] {
        let mut samples = Vec::new();
        for _ in 0..3 {
            let plan = s
                .new_plan(
                    action(
                        "hostile",
                        &[("mode", "giant-file".into()), ("mb", mb.to_string())],
                    ),
                    &project,
                )
                .await
                .unwrap();
            s.strategize_plan(&plan.id).await.unwrap();
            s.execute_plan(&plan.id).await.unwrap();
            let started = Instant::now();
            s.apply_plan(&plan.id).await.unwrap();
            samples.push(started.elapsed());
            std::fs::remove_file(project.join("giant.bin")).unwrap();
        }
        let m = median(samples);
        println!("apply {mb} MiB: {m:?}");
        writeln!(csv, "{mb},{}", m.as_secs_f64() * 1e3).unwrap();
    }
    std::fs::write(out.join("scale-apply.csv"), csv).unwrap();
}
