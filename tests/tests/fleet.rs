//! The worker fleet as operators run it, on both backends: `lockstep plan
//! submit`, real `lockstep worker` processes, approval, cancellation,
//! graceful shutdown, project refusal, ordering, drift, and a fleet test
//! with a killed and a stopped worker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lockstep_tests::cli::CliProject;
use lockstep_tests::db::RawDb;
use lockstep_tests::process::{action_file, lockstep_command, signal};
use lockstep_tests::{on_both_backends, Backend, TestDb};
use sqlx::Row;

/// Lease length of the test workers (the shortest the lock service grants).
const TTL: Duration = Duration::from_secs(5);

/// A `lockstep worker` process, killed on drop (also when the test fails).
struct WorkerProc {
    child: Child,
}

impl WorkerProc {
    fn start(db: &TestDb, projects_root: &Path, extra: &[&str]) -> WorkerProc {
        let mut cmd = lockstep_command(&db.url, projects_root);
        cmd.args(["worker", "--projects-root"])
            .arg(projects_root)
            .args(["--ttl", "5s", "--poll", "100ms", "--backoff", "200ms"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        WorkerProc {
            child: cmd.spawn().unwrap(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait (at most `within`) for the exit; its stderr.
    fn terminate(mut self, within: Duration) -> String {
        signal(self.pid(), "TERM");
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "worker exited with {status}");
                let mut err = String::new();
                std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err)
                    .unwrap();
                return err;
            }
            assert!(
                Instant::now() < end,
                "the worker did not stop within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A workspace of projects under one root, on `db`.
struct Fleet<'a> {
    db: &'a TestDb,
    root: PathBuf,
}

impl<'a> Fleet<'a> {
    fn new(db: &'a TestDb) -> Self {
        let root = db.dir.path().join("projects");
        std::fs::create_dir_all(&root).unwrap();
        Fleet { db, root }
    }

    fn project(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let p = self.root.join(name);
        for (path, contents) in files {
            let f = p.join(path);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, contents).unwrap();
        }
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn submit(&self, project: &Path, action: &Path, extra: &[&str]) -> String {
        let mut args = vec!["plan", "submit", action.to_str().unwrap()];
        args.extend_from_slice(extra);
        CliProject::new(self.db, project).json(&args)["plan_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn status(&self, id: &str) -> serde_json::Value {
        CliProject::new(self.db, &self.root).json(&["plan", "status", id])
    }

    fn state(&self, id: &str) -> String {
        let s = &self.status(id)["plan"]["status"];
        format!(
            "{}/{}",
            s["phase"].as_str().unwrap(),
            s["state"].as_str().unwrap()
        )
    }

    /// Wait until the plan is in `want` (e.g. `apply/applied`).
    fn wait_for(&self, id: &str, want: &str, within: Duration) {
        let end = Instant::now() + within;
        loop {
            let now = self.state(id);
            if now == want {
                return;
            }
            assert!(
                Instant::now() < end,
                "plan {id} is {now}, not {want}, after {within:?}: {}",
                self.status(id)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the worker refused plan `id` (errored before strategize)
    /// with an error that says `why`.
    fn refused(&self, id: &str, why: &str) {
        self.wait_for(id, "strategize/errored", Duration::from_secs(30));
        let status = self.status(id);
        let error = status["plan"]["error"].as_str().unwrap();
        assert!(error.contains(why), "{error}");
    }

    fn action(&self, name: &str, plugin: &str, params: &[(&str, &str)]) -> PathBuf {
        action_file(self.db.dir.path(), name, plugin, plugin, params)
    }
}

fn rust_project(fleet: &Fleet<'_>, name: &str) -> PathBuf {
    fleet.project(
        name,
        &[
            ("src/main.rs", "fn main() {}\n"),
            ("lib.rs", "pub fn f() {}\n"),
        ],
    )
}

fn license(fleet: &Fleet<'_>) -> PathBuf {
    fleet.action(
        "license",
        "license-header",
        &[
            ("header", "SPDX-License-Identifier: MIT"),
            ("globs", "**/*.rs"),
            ("comment", "// "),
        ],
    )
}

/// Each attempt at `plan`: owner, token, started, ended, outcome, phase.
type AttemptRow = (String, i64, i64, Option<i64>, Option<String>, String);

async fn attempts(db: &TestDb, plan: &str) -> Vec<AttemptRow> {
    let raw = RawDb::connect(&db.url).await.unwrap();
    let rows = sqlx::query(
        "SELECT owner, token, started_at, ended_at, outcome, phase FROM plan_attempts WHERE plan_id = $1 ORDER BY id",
    )
    .bind(plan)
    .fetch_all(&raw.pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                r.get::<i64, _>(1),
                r.get::<i64, _>(2),
                r.get::<Option<i64>, _>(3),
                r.get::<Option<String>, _>(4),
                r.get::<String, _>(5),
            )
        })
        .collect()
}

async fn submitted_plans_run_and_apply_waits_for_approval(backend: Backend) {
    let db = TestDb::new(backend).await;
    let fleet = Fleet::new(&db);
    let (a, b) = (rust_project(&fleet, "a"), rust_project(&fleet, "b"));
    let act = license(&fleet);
    let auto = fleet.submit(&a, &act, &["--auto-apply"]);
    let reviewed = fleet.submit(&b, &act, &[]);
    let worker = WorkerProc::start(&db, &fleet.root, &[]);
    fleet.wait_for(&auto, "apply/applied", Duration::from_secs(60));
    assert!(std::fs::read_to_string(a.join("src/main.rs"))
        .unwrap()
        .starts_with("// SPDX-License-Identifier: MIT"));
    // Review before apply is the default: the plan stops executed.
    fleet.wait_for(&reviewed, "execute/complete", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fleet.state(&reviewed), "execute/complete");
    // The worker let go of it: lease released and the claim's hint
    // cleared, so that the approval's claim need not wait out the lease.
    let raw = RawDb::connect(&db.url).await.unwrap();
    let hint: i64 = sqlx::query_scalar("SELECT claimed_until FROM plan_queue WHERE plan_id = $1")
        .bind(&reviewed)
        .fetch_one(&raw.pool)
        .await
        .unwrap();
    assert_eq!(hint, 0, "the claim's hint is cleared on release");
    assert_eq!(
        std::fs::read_to_string(b.join("lib.rs")).unwrap(),
        "pub fn f() {}\n"
    );
    let approved = CliProject::new(&db, &b).json(&["plan", "approve", &reviewed]);
    assert_eq!(approved["approved"], true, "{approved}");
    fleet.wait_for(&reviewed, "apply/applied", Duration::from_secs(60));
    assert!(std::fs::read_to_string(b.join("lib.rs"))
        .unwrap()
        .starts_with("// SPDX"));
    // Each phase is one attempt, recorded with the claim's token.
    let tries = attempts(&db, &auto).await;
    assert_eq!(tries.len(), 3, "{tries:?}");
    assert!(
        tries.iter().all(|t| t.4.as_deref() == Some("ok")),
        "{tries:?}"
    );
    // Each attempt is recorded under the phase it ran.
    let phases: Vec<&str> = tries.iter().map(|t| t.5.as_str()).collect();
    assert_eq!(phases, ["strategize", "execute", "apply"], "{tries:?}");
    // The worker reports its running count with its heartbeat: it shows
    // idle once the heartbeat after the last phase has landed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed = CliProject::new(&db, &fleet.root).json(&["workers", "list"]);
        if listed[0]["state"] == "idle" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never idle: {listed}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let err = worker.terminate(Duration::from_secs(20));
    assert!(err.contains("stopped"), "{err}");
    let listed = CliProject::new(&db, &fleet.root).json(&["workers", "list"]);
    assert_eq!(listed[0]["state"], "stopped", "{listed}");
}

async fn submitting_twice_with_one_key_returns_the_first_plan(backend: Backend) {
    let db = TestDb::new(backend).await;
    let fleet = Fleet::new(&db);
    let a = rust_project(&fleet, "a");
    let act = license(&fleet);
    let cli = CliProject::new(&db, &a);
    let args = [
        "plan",
        "submit",
        act.to_str().unwrap(),
        "--idempotency-key",
        "deploy-42",
    ];
    let first = cli.json(&args);
    let second = cli.json(&args);
    assert_eq!(first["plan_id"], second["plan_id"]);
    assert_eq!(first["existing"], false);
    assert_eq!(second["existing"], true);
    let other = fleet.submit(&a, &act, &["--idempotency-key", "deploy-43"]);
    assert_ne!(other, first["plan_id"].as_str().unwrap());
    let plans = cli.json(&["plan", "list"]);
    assert_eq!(plans.as_array().unwrap().len(), 2, "{plans}");
}

async fn a_project_outside_the_projects_root_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let fleet = Fleet::new(&db);
    let elsewhere = db.project("elsewhere", &[("main.rs", "fn main() {}\n")]);
    let id = fleet.submit(&elsewhere, &license(&fleet), &["--auto-apply"]);
    let _worker = WorkerProc::start(&db, &fleet.root, &[]);
    fleet.refused(&id, "outside this worker's --projects-root");
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("main.rs")).unwrap(),
        "fn main() {}\n"
    );
}

async fn a_project_moved_under_its_path_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let fleet = Fleet::new(&db);
    let a = rust_project(&fleet, "a");
    let id = fleet.submit(&a, &license(&fleet), &["--auto-apply"]);
    // Another tree now sits at the submitted path.
    std::fs::write(a.join(".lockstep/project-id"), "someone-else\n").unwrap();
    let _worker = WorkerProc::start(&db, &fleet.root, &[]);
    fleet.refused(&id, "not the one this plan was submitted for");
    assert_eq!(
        std::fs::read_to_string(a.join("lib.rs")).unwrap(),
        "pub fn f() {}\n"
    );
}

async fn cancel_reaches_the_running_worker(backend: Backend) {
    let db = TestDb::new(backend).await;
    let fleet = Fleet::new(&db);
    let p = fleet.project("p", &[]);
    let slow = fleet.action("slow", "slow", &[("steps", "1"), ("ms", "30000")]);
    let id = fleet.submit(&p, &slow, &["--auto-apply"]);
    let _worker = WorkerProc::start(&db, &fleet.root, &[]);
    fleet.wait_for(&id, "execute/processing", Duration::from_secs(60));
    let asked = Instant::now();
    let out = CliProject::new(&db, &p).ok(&["plan", "cancel", &id]);
    assert!(out.contains("requested"), "{out}");
    // Within one heartbeat (a third of the lease) plus the cancel itself.
    fleet.wait_for(&id, "execute/cancelled", TTL * 2);
    assert!(asked.elapsed() < TTL * 2);
    assert!(!p.join("slow").exists(), "nothing was applied");
    let locks = CliProject::new(&db, &p).ok(&["--json", "locks", "list"]);
    assert!(!locks.contains(&format!("plan:{id}")), "{locks}");
}

async fn sigterm_interrupts_after_the_grace_and_another_worker_finishes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let fleet = Fleet::new(&db);
    let p = fleet.project("p", &[]);
    let slow = fleet.action("slow", "slow", &[("steps", "1"), ("ms", "4000")]);
    let id = fleet.submit(&p, &slow, &["--auto-apply"]);
    let first = WorkerProc::start(&db, &fleet.root, &["--grace", "500ms"]);
    fleet.wait_for(&id, "execute/processing", Duration::from_secs(60));
    first.terminate(Duration::from_secs(15));
    // Interrupted, retryable, and no lease left behind.
    assert_eq!(fleet.state(&id), "execute/errored");
    let locks = CliProject::new(&db, &p).ok(&["--json", "locks", "list"]);
    assert!(!locks.contains(&format!("plan:{id}")), "{locks}");
    let _second = WorkerProc::start(&db, &fleet.root, &[]);
    fleet.wait_for(&id, "apply/applied", Duration::from_secs(60));
    assert_eq!(
        std::fs::read_to_string(p.join("slow/s1.txt")).unwrap(),
        "done s1\n"
    );
    let outcomes: Vec<_> = attempts(&db, &id).await.into_iter().map(|a| a.4).collect();
    assert!(
        outcomes.contains(&Some("interrupted".into())),
        "{outcomes:?}"
    );
}

async fn a_phase_in_progress_finishes_within_the_grace(backend: Backend) {
    let db = TestDb::new(backend).await;
    let fleet = Fleet::new(&db);
    let p = fleet.project("p", &[]);
    let slow = fleet.action("slow", "slow", &[("steps", "1"), ("ms", "1500")]);
    let id = fleet.submit(&p, &slow, &[]);
    let worker = WorkerProc::start(&db, &fleet.root, &["--grace", "30s"]);
    fleet.wait_for(&id, "execute/processing", Duration::from_secs(60));
    worker.terminate(Duration::from_secs(20));
    assert_eq!(fleet.state(&id), "execute/complete");
}

async fn plans_on_one_project_run_in_submission_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let fleet = Fleet::new(&db);
    let p = fleet.project("p", &[("counter.txt", "<0>\n")]);
    let ids: Vec<_> = (0..4)
        .map(|k| {
            let act = fleet.action(
                &format!("step{k}"),
                "replace",
                &[
                    ("find", &format!("<{k}>")),
                    ("replace", &format!("<{}>", k + 1)),
                    ("globs", "*.txt"),
                ],
            );
            fleet.submit(&p, &act, &["--auto-apply"])
        })
        .collect();
    let _w1 = WorkerProc::start(&db, &fleet.root, &["--concurrency", "2"]);
    let _w2 = WorkerProc::start(&db, &fleet.root, &["--concurrency", "2"]);
    for id in &ids {
        fleet.wait_for(id, "apply/applied", Duration::from_secs(90));
    }
    // Each plan strategized on the tree the one before it left.
    assert_eq!(
        std::fs::read_to_string(p.join("counter.txt")).unwrap(),
        "<4>\n"
    );
    let mut last_end = 0;
    for id in &ids {
        let tries = attempts(&db, id).await;
        assert!(
            tries[0].2 >= last_end,
            "plan {id} started before the previous ended"
        );
        last_end = tries.iter().filter_map(|t| t.3).max().unwrap();
    }
}

async fn a_drifted_apply_strategizes_again_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let fleet = Fleet::new(&db);
    let a = rust_project(&fleet, "a");
    let id = fleet.submit(&a, &license(&fleet), &[]);
    let _worker = WorkerProc::start(&db, &fleet.root, &[]);
    fleet.wait_for(&id, "execute/complete", Duration::from_secs(60));
    // Someone edits the project between review and apply.
    std::fs::write(a.join("lib.rs"), "pub fn g() {}\n").unwrap();
    CliProject::new(&db, &a).ok(&["plan", "approve", &id]);
    fleet.wait_for(&id, "apply/applied", Duration::from_secs(60));
    let lib = std::fs::read_to_string(a.join("lib.rs")).unwrap();
    assert!(
        lib.starts_with("// SPDX-License-Identifier: MIT\n") && lib.ends_with("pub fn g() {}\n"),
        "{lib}"
    );
    let outcomes: Vec<_> = attempts(&db, &id).await.into_iter().map(|a| a.4).collect();
    assert!(outcomes.contains(&Some("drift".into())), "{outcomes:?}");
}

on_both_backends!(
    submitted_plans_run_and_apply_waits_for_approval,
    submitting_twice_with_one_key_returns_the_first_plan,
    a_project_outside_the_projects_root_is_refused,
    a_project_moved_under_its_path_is_refused,
    cancel_reaches_the_running_worker,
    sigterm_interrupts_after_the_grace_and_another_worker_finishes,
    a_phase_in_progress_finishes_within_the_grace,
    plans_on_one_project_run_in_submission_order,
    a_drifted_apply_strategizes_again_once,
);

/// Which worker process holds a lease on a plan now, if any.
async fn plan_holders(raw: &RawDb) -> BTreeMap<String, i64> {
    let rows = sqlx::query("SELECT resource, holder_pid FROM locks WHERE resource LIKE 'plan:%'")
        .fetch_all(&raw.pool)
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect()
}

/// 3 workers, `plans` plans over 4 projects; one worker SIGKILLed and one
/// SIGSTOPped past its lease mid-phase.
pub async fn fleet_run(backend: Backend, plans: usize) {
    let db = TestDb::new(backend).await;
    let fleet = Fleet::new(&db);
    let projects: Vec<_> = (0..4)
        .map(|i| fleet.project(&format!("p{i}"), &[("counter.txt", "<0>\n")]))
        .collect();
    let slow = fleet.action("slow", "slow", &[("steps", "1"), ("ms", "1500")]);
    // Plans in submission order: every other plan on a project is slow
    // (something to interrupt); the others advance its counter by one.
    let mut bumps = vec![0usize; projects.len()];
    let mut todo = Vec::new();
    for n in 0..plans {
        let i = n % projects.len();
        let act = if n / projects.len() % 2 == 1 {
            slow.clone()
        } else {
            let k = bumps[i];
            bumps[i] += 1;
            fleet.action(
                &format!("bump{i}-{k}"),
                "replace",
                &[
                    ("find", &format!("<{k}>")),
                    ("replace", &format!("<{}>", k + 1)),
                    ("globs", "*.txt"),
                ],
            )
        };
        todo.push((i, act));
    }
    // Half now, half after the takeover, so that there is work left to
    // stop a worker in.
    let second_wave = todo.split_off(plans / 2);
    let submit = |wave: Vec<(usize, PathBuf)>| -> Vec<String> {
        wave.into_iter()
            .map(|(i, act)| fleet.submit(&projects[i], &act, &["--auto-apply"]))
            .collect()
    };
    let mut ids = submit(todo);
    let raw = RawDb::connect(&db.url).await.unwrap();
    let workers: Vec<_> = (0..3)
        .map(|_| WorkerProc::start(&db, &fleet.root, &["--concurrency", "2"]))
        .collect();
    // Kill the first worker seen holding a plan.
    let pids: Vec<u32> = workers.iter().map(WorkerProc::pid).collect();
    let (killed, killed_plan) = wait_for_holder(&raw, &pids).await;
    signal(killed, "KILL");
    let killed_at = Instant::now();
    // The killed worker's plan is taken over within 2 × TTL.
    let end = killed_at + TTL * 2 + Duration::from_secs(1);
    loop {
        let holder = plan_holders(&raw).await.get(&killed_plan).copied();
        let moved = holder.is_some_and(|pid| pid != i64::from(killed));
        let finished = fleet.state(killed_plan.trim_start_matches("plan:")) == "apply/applied";
        if moved || finished {
            break;
        }
        assert!(
            Instant::now() < end,
            "{killed_plan} was not taken over within 2 × TTL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ids.extend(submit(second_wave));
    // Then stop another past its lease while it holds a plan, and let it
    // go on. (Not at the same time as the takeover above: on SQLite a
    // stopped process that holds the file's write lock stalls every writer
    // until it continues; a killed one loses the lock at once.)
    let others: Vec<u32> = pids.iter().copied().filter(|p| *p != killed).collect();
    let (stopped, _) = wait_for_holder(&raw, &others).await;
    signal(stopped, "STOP");
    tokio::time::sleep(TTL + Duration::from_secs(2)).await;
    signal(stopped, "CONT");
    for id in &ids {
        fleet.wait_for(id, "apply/applied", Duration::from_secs(300));
    }
    for (i, p) in projects.iter().enumerate() {
        assert_eq!(
            std::fs::read_to_string(p.join("counter.txt")).unwrap(),
            format!("<{}>\n", bumps[i]),
            "project p{i}"
        );
    }
    no_write_after_a_takeover(&raw, &ids).await;
    drop(workers);
}

/// The first of `pids` seen holding a plan, and the plan's lock resource.
async fn wait_for_holder(raw: &RawDb, pids: &[u32]) -> (u32, String) {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        for (plan, holder) in plan_holders(raw).await {
            if let Some(pid) = pids.iter().find(|p| i64::from(**p) == holder) {
                return (*pid, plan);
            }
        }
        assert!(
            Instant::now() < end,
            "workers {pids:?} never claimed a plan"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// From the history: once a session wrote a plan after another, the
/// earlier session never wrote it again (a zombie's writes were refused),
/// and successful attempts never overlap in time.
async fn no_write_after_a_takeover(raw: &RawDb, ids: &[String]) {
    for id in ids {
        let actors: Vec<String> =
            sqlx::query_scalar("SELECT actor FROM plan_events WHERE plan_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&raw.pool)
                .await
                .unwrap();
        let mut seen: Vec<&String> = Vec::new();
        for a in &actors {
            if seen.last() != Some(&a) {
                assert!(
                    !seen.contains(&a),
                    "plan {id}: {a} wrote again after another session: {actors:?}"
                );
                seen.push(a);
            }
        }
        let ok: Vec<(i64, i64, i64)> = sqlx::query(
            "SELECT token, started_at, ended_at FROM plan_attempts WHERE plan_id = $1 AND outcome = 'ok' ORDER BY started_at",
        )
        .bind(id)
        .fetch_all(&raw.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        for w in ok.windows(2) {
            assert!(w[0].2 <= w[1].1, "plan {id}: attempts overlap: {ok:?}");
            assert!(
                w[0].0 <= w[1].0,
                "plan {id}: a later attempt had an older token: {ok:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_sqlite() {
    fleet_run(Backend::Sqlite, 24).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_postgres() {
    fleet_run(Backend::Postgres, 24).await;
}

/// The full-size run (`just test-full`): 200 plans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by just test-full"]
async fn fleet_sqlite_full() {
    fleet_run(Backend::Sqlite, 200).await;
}

/// The full-size run (`just test-full`): 200 plans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by just test-full"]
async fn fleet_postgres_full() {
    fleet_run(Backend::Postgres, 200).await;
}
