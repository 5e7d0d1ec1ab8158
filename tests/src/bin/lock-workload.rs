//! The contended-lock workload and its checker (see `lockstep_tests::workload`).
//!
//! ```sh
//! lock-workload run --database-url sqlite:///tmp/w.db --history /tmp/w \
//!     --workers 4 --tasks 32 --resources 3 --ttl 5s --duration 60s --pause 0
//! lock-workload check --database-url sqlite:///tmp/w.db --history /tmp/w
//! ```
//!
//! `run` starts the worker processes, SIGSTOPs one of them past its TTL and
//! SIGCONTs it, waits for all, then checks the history: it exits 1 if the
//! checker finds a violation or a worker failed.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use lockstep_tests::db::RawDb;
use lockstep_tests::workload::{
    check, counters, prepare, read_histories, run_worker, WorkerConfig,
};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole workload and check it.
    Run {
        #[command(flatten)]
        common: Common,
        /// Worker processes.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Index of the worker to SIGSTOP past its TTL (none if omitted).
        #[arg(long)]
        pause: Option<usize>,
    },
    /// One worker process (started by `run`).
    Worker {
        #[command(flatten)]
        common: Common,
        /// This worker's index.
        #[arg(long)]
        id: usize,
    },
    /// Check an existing history.
    Check {
        /// Database URL (for the final counters).
        #[arg(long)]
        database_url: String,
        /// Directory holding the `*.jsonl` histories.
        #[arg(long)]
        history: PathBuf,
    },
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Database URL.
    #[arg(long)]
    database_url: String,
    /// Directory for the `*.jsonl` histories.
    #[arg(long)]
    history: PathBuf,
    /// Tasks per worker.
    #[arg(long, default_value_t = 32)]
    tasks: usize,
    /// Resources contended for.
    #[arg(long, default_value_t = 3)]
    resources: usize,
    /// Lease length.
    #[arg(long, value_parser = humantime_duration, default_value = "5s")]
    ttl: Duration,
    /// How long workers keep starting operations.
    #[arg(long, value_parser = humantime_duration, default_value = "30s")]
    duration: Duration,
    /// Most acquisitions per task.
    #[arg(long, default_value_t = 500)]
    max_ops: usize,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = n.parse().map_err(|e| format!("{s}: {e}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        other => return Err(format!("unknown unit `{other}`")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn worker_config(c: &Common, id: usize) -> WorkerConfig {
    WorkerConfig {
        url: c.database_url.clone(),
        worker: id,
        tasks: c.tasks,
        resources: c.resources,
        ttl: c.ttl,
        duration: c.duration,
        max_ops_per_task: c.max_ops,
    }
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

async fn check_and_print(url: &str, history: &std::path::Path) -> anyhow::Result<bool> {
    let db = RawDb::connect(url).await?;
    let events = read_histories(history)?;
    let report = check(&events, Some(&counters(&db).await?));
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "operations {}  grants {}  conflicts {}  takeovers {}  writes accepted {}  stale writes rejected {}  errors {}  violations {}",
        report.operations,
        report.grants,
        report.conflicts,
        report.takeovers,
        report.writes_accepted,
        report.stale_writes_rejected,
        report.errors,
        report.violations.len()
    );
    for v in &report.violations {
        eprintln!("VIOLATION: {v}");
    }
    Ok(report.violations.is_empty())
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Worker { common, id } => {
            let history = common.history.join(format!("worker-{id}.jsonl"));
            run_worker(worker_config(&common, id), &history).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Cmd::Check {
            database_url,
            history,
        } => {
            let ok = check_and_print(&database_url, &history).await?;
            Ok(if ok {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        Cmd::Run {
            common,
            workers,
            pause,
        } => {
            std::fs::create_dir_all(&common.history)?;
            let db = RawDb::connect(&common.database_url).await?;
            prepare(&db, common.resources).await?;
            db.pool.close().await;
            let exe = std::env::current_exe()?;
            let mut children: Vec<Child> = (0..workers)
                .map(|id| {
                    Command::new(&exe)
                        .arg("worker")
                        .arg("--id")
                        .arg(id.to_string())
                        .args(["--database-url", &common.database_url])
                        .arg("--history")
                        .arg(&common.history)
                        .args(["--tasks", &common.tasks.to_string()])
                        .args(["--resources", &common.resources.to_string()])
                        .args(["--ttl", &format!("{}ms", common.ttl.as_millis())])
                        .args(["--duration", &format!("{}ms", common.duration.as_millis())])
                        .args(["--max-ops", &common.max_ops.to_string()])
                        .spawn()
                })
                .collect::<Result<_, _>>()?;
            if let Some(victim) = pause.filter(|p| *p < workers) {
                // Stop one worker a third of the way in, for 1.5 TTLs: its
                // holds outlive their leases and are taken over.
                tokio::time::sleep(common.duration / 3).await;
                signal(&children[victim], "STOP");
                eprintln!("SIGSTOP worker {victim}");
                tokio::time::sleep(common.ttl.mul_f64(1.5)).await;
                signal(&children[victim], "CONT");
                eprintln!("SIGCONT worker {victim}");
            }
            let limit = Instant::now() + common.duration + common.ttl * 4 + Duration::from_secs(60);
            let mut failed = Vec::new();
            for (id, child) in children.iter_mut().enumerate() {
                let status = loop {
                    if let Some(status) = child.try_wait()? {
                        break status;
                    }
                    if Instant::now() > limit {
                        let _ = child.kill();
                        anyhow::bail!("worker {id} did not finish in time");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                if !status.success() {
                    failed.push(format!("worker {id} {status}"));
                }
            }
            // A worker that died wrote only part of its history: the check
            // below still runs, but the run fails.
            let ok = check_and_print(&common.database_url, &common.history).await?;
            for f in &failed {
                eprintln!("WORKER FAILED: {f}");
            }
            Ok(if ok && failed.is_empty() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
    }
}
