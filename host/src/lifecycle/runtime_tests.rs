//! The lifecycle on a single-threaded runtime: the file work of a large
//! changeset runs off the runtime thread, so the lease heartbeats and the
//! other tasks of the runtime keep running while it is done.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::*;
use crate::db::Db;
use crate::locks::LockService;
use crate::store::Store;

/// The lease of every lock in these tests: short, so that a runtime thread
/// blocked for longer than this would lose it.
const TTL: Duration = Duration::from_secs(2);
/// Existing files the large plan deletes: every one is read and hashed at
/// Execute and again by the drift check at Apply.
const DELETED: usize = 5_000;
/// Files the large plan writes (each staged, fsynced and renamed), and
/// their size.
const WRITTEN: usize = 48;
const WRITTEN_BYTES: usize = 512 * 1024;
/// Directory levels above the deleted files: every read walks them one
/// handle at a time.
const DEPTH: usize = 24;

/// `params.steps` steps; with `params.bulk` each deletes every file under
/// `old/` and writes [`WRITTEN`] files under `new/`, without it each writes
/// one small file after a short sleep.
struct Fixtures;

impl PluginProvider for Fixtures {
    fn strategist(&self, _: &str) -> Result<Arc<dyn Strategist>, PluginError> {
        Ok(Arc::new(Fixtures))
    }

    fn executor(&self, _: &str) -> Result<Arc<dyn Executor>, PluginError> {
        Ok(Arc::new(Fixtures))
    }
}

#[async_trait]
impl Strategist for Fixtures {
    async fn strategize(
        &self,
        _: &PluginContext,
        action: &Action,
    ) -> Result<PlanProposal, PluginError> {
        let steps: usize = action.params["steps"].parse().unwrap();
        Ok(PlanProposal {
            summary: action.name.clone(),
            steps: (0..steps)
                .map(|i| Step {
                    id: format!("s{i}"),
                    title: format!("step {i}"),
                    params: action.params.clone(),
                    targets: vec![],
                })
                .collect(),
        })
    }
}

#[async_trait]
impl Executor for Fixtures {
    async fn execute(&self, _: &PluginContext, step: &Step) -> Result<StepOutcome, PluginError> {
        let changes = if step.params.contains_key("bulk") {
            let mut changes: Vec<FileChange> = (0..DELETED)
                .map(|i| FileChange::Delete { path: old_path(i) })
                .collect();
            changes.extend((0..WRITTEN).map(|i| FileChange::Write {
                path: format!("new/{i}.bin"),
                contents: vec![b'0' + (i % 10) as u8; WRITTEN_BYTES],
            }));
            changes
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            vec![FileChange::Write {
                path: format!("small/{}.txt", step.id),
                contents: step.title.clone().into_bytes(),
            }]
        };
        Ok(StepOutcome {
            changes,
            summary: step.title.clone(),
        })
    }
}

/// The `i`-th file the large plan deletes, [`DEPTH`] directories down.
fn old_path(i: usize) -> String {
    let dirs: Vec<String> = (0..DEPTH).map(|d| format!("d{d}")).collect();
    format!("old/{}/g{}/f{i}.txt", dirs.join("/"), i % 64)
}

fn action(bulk: bool, steps: usize) -> Action {
    let mut params = BTreeMap::from([("steps".to_string(), steps.to_string())]);
    if bulk {
        params.insert("bulk".into(), String::new());
    }
    Action {
        name: "fixture".into(),
        strategy: "fixture".into(),
        executor: "fixture".into(),
        params,
    }
}

/// The largest pause between the wake-ups of a task that asks to be woken
/// every 10 ms, measured until `stop` is cancelled.
fn ticker(stop: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<Duration> {
    tokio::spawn(async move {
        let mut largest = Duration::ZERO;
        let mut last = Instant::now();
        while !stop.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            largest = largest.max(last.elapsed());
            last = Instant::now();
        }
        largest
    })
}

/// `result`, or a panic naming what failed.
fn done<T>(what: &str, result: Result<T, LifecycleError>) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e:?}"))
}

/// A plan through all three phases, to `apply/applied`; panics on any
/// error (a lost lease among them).
async fn run_plan(s: &PlanLifecycleService, project: &Path, action: Action) -> ApplyReport {
    let plan = done("new plan", s.new_plan(action, project).await);
    done("strategize", s.strategize_plan(&plan.id).await);
    done("execute", s.execute_plan(&plan.id).await);
    let report = done("apply", s.apply_plan(&plan.id).await);
    let status = done("status", s.status(&plan.id).await).plan.status;
    assert_eq!(status, Status::new(Phase::Apply, State::Applied));
    report
}

/// The large plan's Execute reads, lists and hashes thousands of files,
/// and its Apply checks them again, deletes them and writes and fsyncs
/// 24 MiB: done on the runtime thread, that would hold it for longer than
/// the lease (the heartbeat could not renew it: the plan's writes would be
/// fenced) and stall every other task. Meanwhile a second session runs a
/// plan of 40 steps on another project, and a ticker measures how long the
/// runtime thread was ever kept from it.
#[tokio::test(flavor = "current_thread")]
async fn a_large_changeset_keeps_its_lease_and_the_runtime_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let (big, small) = (dir.path().join("big"), dir.path().join("small"));
    std::fs::create_dir_all(&small).unwrap();
    for i in 0..DELETED {
        let path = big.join(old_path(i));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("old file {i}\n")).unwrap();
    }
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let locks = LockService::with_min_ttl(db.clone(), TTL);
    let options = LifecycleOptions {
        lock_ttl: TTL,
        ..LifecycleOptions::default()
    };
    let session = || {
        PlanLifecycleService::new(
            Store::new(db.clone()),
            locks.clone(),
            Arc::new(Fixtures),
            options.clone(),
        )
    };
    let (a, b) = (session(), session());

    let stop = tokio_util::sync::CancellationToken::new();
    let ticks = ticker(stop.clone());
    let started = Instant::now();
    let (report, (small_report, small_elapsed)) =
        tokio::join!(run_plan(&a, &big, action(true, 1)), async {
            let report = run_plan(&b, &small, action(false, 40)).await;
            (report, started.elapsed())
        });
    let elapsed = started.elapsed();
    stop.cancel();
    let largest = ticks.await.unwrap();
    eprintln!(
        "large plan: {elapsed:?}, small plan: {small_elapsed:?}, \
         longest the runtime thread was held: {largest:?}"
    );
    assert_eq!(report.files, DELETED + WRITTEN);
    assert_eq!(small_report.files, 40);
    assert!(!big.join(old_path(0)).exists());
    assert_eq!(
        std::fs::read(big.join("new/7.bin")).unwrap(),
        vec![b'7'; WRITTEN_BYTES]
    );
    // Liveness, not speed: the runtime thread was never held for anything
    // near a lease.
    assert!(
        largest < TTL / 2,
        "the runtime thread was blocked for {largest:?} (lease {TTL:?})"
    );
}
