//! `just bench-service`: `lockstep serve`'s router on loopback under load,
//! bounded in count and time. 200 clients follow the event stream of every
//! plan while readers list and fetch plans in a loop and one client submits
//! `noop` plans (auto-apply, run by an in-process worker) at a steady pace,
//! for `SERVICE_SECONDS` (default 30). Then it reports throughput, p50/p99
//! latency of reads and submits, errors, and whether every stream received
//! every event written meanwhile (lost events).
//!
//! Environment: `SERVICE_SECONDS`, `SERVICE_SSE` (200), `SERVICE_READERS`
//! (4), `SERVICE_SUBMIT_MS` (50: one submission per this many ms),
//! `SERVICE_DATABASE_URL` (default: SQLite in a temp directory).
//! `cargo test --benches` runs it for 2 s with 20 streams.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep::fleet::{Worker, WorkerOptions};
use lockstep::service::{self, ServiceConfig};
use lockstep::{Config, Container};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    base: String,
    token: String,
    projects: Vec<String>,
    http: reqwest::Client,
    stop: CancellationToken,
    errors: AtomicU64,
}

async fn setup(url: &str, root: &Path) -> (Arc<Container>, String, Vec<String>) {
    let mut config = Config::for_project(root);
    config.database_url = Some(url.to_string());
    config.plugin_dirs = vec![lockstep_test_artifacts::dist()];
    config.project_plugins = false;
    config.lifecycle.lock_ttl = Duration::from_secs(30);
    let c = Arc::new(Container::build(config).await.expect("container"));
    let token = service::tokens::create(&c, "bench", service::Scope::Admin)
        .await
        .expect("token")
        .token;
    let mut projects = Vec::new();
    for i in 0..32 {
        let p = root.join(format!("p{i}"));
        std::fs::create_dir_all(&p).unwrap();
        let info = service::projects::register(&c, &p, "bench", None)
            .await
            .expect("project");
        projects.push(info.id);
    }
    (c, token, projects)
}

/// Follow the stream of every plan; the ids received.
async fn follow(run: Arc<Run>, after: i64, seen: Arc<Mutex<Vec<i64>>>) {
    let url = format!("{}/api/v1/events/stream?after={after}", run.base);
    let Ok(mut resp) = run.http.get(url).bearer_auth(&run.token).send().await else {
        run.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut buf = String::new();
    loop {
        // Runs until aborted: it must see the events written after the load stops.
        let Ok(Some(chunk)) = resp.chunk().await else {
            return;
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(id) = block.lines().find_map(|l| l.strip_prefix("id:")) {
                if let Ok(id) = id.trim().parse() {
                    seen.lock().await.push(id);
                }
            }
        }
    }
}

/// Time one request; `None` on an error.
async fn timed(req: reqwest::RequestBuilder) -> Option<Duration> {
    let start = Instant::now();
    let resp = req.send().await.ok()?;
    let ok = resp.status().is_success();
    resp.bytes().await.ok()?;
    ok.then(|| start.elapsed())
}

async fn reader(run: Arc<Run>, lat: Arc<Mutex<Vec<Duration>>>) {
    let mut last: Option<String> = None;
    while !run.stop.is_cancelled() {
        let list = run
            .http
            .get(format!("{}/api/v1/plans?limit=20", run.base))
            .bearer_auth(&run.token);
        let start = Instant::now();
        match list.send().await {
            Ok(r) if r.status().is_success() => {
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                lat.lock().await.push(start.elapsed());
                last = v["plans"][0]["id"].as_str().map(str::to_string).or(last);
            }
            _ => drop(run.errors.fetch_add(1, Ordering::Relaxed)),
        }
        if let Some(id) = &last {
            let one = run
                .http
                .get(format!("{}/api/v1/plans/{id}", run.base))
                .bearer_auth(&run.token);
            match timed(one).await {
                Some(d) => lat.lock().await.push(d),
                None => drop(run.errors.fetch_add(1, Ordering::Relaxed)),
            }
        }
    }
}

async fn submitter(run: Arc<Run>, every: Duration, lat: Arc<Mutex<Vec<Duration>>>) {
    let mut tick = tokio::time::interval(every);
    let mut i = 0usize;
    while !run.stop.is_cancelled() {
        tick.tick().await;
        let body = serde_json::json!({
            "project": run.projects[i % run.projects.len()],
            "action": {"name": "noop", "strategy": "noop", "executor": "noop"},
            "auto_apply": true,
        });
        i += 1;
        let req = run
            .http
            .post(format!("{}/api/v1/plans", run.base))
            .bearer_auth(&run.token)
            .json(&body);
        match timed(req).await {
            Some(d) => lat.lock().await.push(d),
            None => drop(run.errors.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(what: &str, lat: &mut [Duration], secs: f64) {
    lat.sort();
    println!(
        "{what:<8} {:>7} requests  {:>8.1}/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        lat.len(),
        lat.len() as f64 / secs,
        percentile(lat, 0.5),
        percentile(lat, 0.99)
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let secs: u64 = if full {
        env_or("SERVICE_SECONDS", 30)
    } else {
        2
    };
    let streams: usize = if full { env_or("SERVICE_SSE", 200) } else { 20 };
    let readers: usize = env_or("SERVICE_READERS", 4);
    let every = Duration::from_millis(env_or("SERVICE_SUBMIT_MS", 50));
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("SERVICE_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let (c, token, projects) = setup(&url, dir.path()).await;
    let shutdown = CancellationToken::new();
    let config = ServiceConfig {
        projects_roots: vec![dir.path().to_path_buf()],
        max_page_size: 1000,
        shutdown: shutdown.clone(),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(service::serve(
        listener,
        service::router(c.clone(), config),
        shutdown.clone(),
    ));
    let worker = Worker::new(
        c.clone(),
        WorkerOptions {
            concurrency: 8,
            projects_roots: vec![dir.path().to_path_buf()],
            poll: Duration::from_millis(50),
            ..WorkerOptions::default()
        },
    );
    let worker_stop = CancellationToken::new();
    let worker = {
        let stop = worker_stop.clone();
        tokio::spawn(async move { worker.run(stop).await })
    };
    let after = c.store().last_event_id().await.unwrap();
    let run = Arc::new(Run {
        base,
        token,
        projects,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .build()
            .unwrap(),
        stop: CancellationToken::new(),
        errors: AtomicU64::new(0),
    });
    let seen: Vec<_> = (0..streams)
        .map(|_| Arc::new(Mutex::new(Vec::new())))
        .collect();
    let follows: Vec<_> = seen
        .iter()
        .map(|s| tokio::spawn(follow(run.clone(), after, s.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (reads, submits) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let load: Vec<_> = (0..readers)
        .map(|_| tokio::spawn(reader(run.clone(), reads.clone())))
        .chain([tokio::spawn(submitter(run.clone(), every, submits.clone()))])
        .collect();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    // Stop the load, let the worker finish and the streams catch up.
    run.stop.cancel();
    let elapsed = start.elapsed().as_secs_f64();
    for l in load {
        let _ = l.await;
    }
    worker_stop.cancel();
    let _ = worker.await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let written = c
        .store()
        .events_after(None, after, 1_000_000)
        .await
        .unwrap();
    for f in follows {
        f.abort();
    }
    let expected: std::collections::BTreeSet<i64> = written.iter().map(|e| e.id).collect();
    let mut lost_streams = 0;
    let mut lost_events = 0;
    for s in &seen {
        let got: std::collections::BTreeSet<i64> = s.lock().await.iter().copied().collect();
        let missing = expected.difference(&got).count();
        lost_events += missing;
        lost_streams += usize::from(missing > 0);
    }
    println!(
        "service on {} for {secs} s: {streams} event streams, {readers} readers, a submission every {every:?}",
        if url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" }
    );
    report("reads", &mut reads.lock().await, elapsed);
    report("submits", &mut submits.lock().await, elapsed);
    println!(
        "events   {} written, each stream missed {lost_events} in all ({lost_streams} streams missed any); errors {}",
        expected.len(),
        run.errors.load(Ordering::Relaxed)
    );
    shutdown.cancel();
    let _ = server.await;
}
