//! Crash trials: `plan run` is killed with SIGKILL at random points across
//! strategize, execute and apply (applies are slowed per file so that kills
//! land between two renames), then the next command runs. Afterwards no plan
//! is left in processing, no project is half-applied (untouched, or complete
//! after roll-forward), and every plan can be finished by retry or revert.
//!
//! One trial in five is killed as soon as its apply has renamed a first file
//! (the test polls the project for it), so some kills are sure to land in
//! the middle of an apply: the run fails unless a half-applied project was
//! seen after a kill and every such project was rolled forward.
//!
//! `LOCKSTEP_CRASH_TRIALS` sets the number of trials per backend (default 50).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lockstep_tests::process::{action_file, host_command};
use lockstep_tests::{on_both_backends, Backend, TestDb};
use rand::Rng;

const FILES: [&str; 4] = ["a.txt", "b.txt", "c.txt", "d.txt"];
const TTL: Duration = lockstep::locks::MIN_TTL;

fn cli(db: &TestDb, project: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = host_command(&db.url, project);
    cmd.arg("--json").args(args);
    cmd.output().unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn contents(project: &Path) -> Vec<String> {
    FILES
        .iter()
        .map(|f| std::fs::read_to_string(project.join(f)).unwrap())
        .collect()
}

/// The plan of this project, if `plan new` got that far.
fn plan_of(db: &TestDb, project: &Path) -> Option<serde_json::Value> {
    let list = json(&cli(db, project, &["plan", "list"]));
    let root = project.to_string_lossy();
    list.as_array()?
        .iter()
        .find(|p| p["project_root"] == root.as_ref())
        .cloned()
}

async fn crash_trials(backend: Backend) {
    let trials: usize = std::env::var("LOCKSTEP_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let db = TestDb::new(backend).await;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    // Time one uninterrupted run, then kill uniformly within that span.
    let span = {
        let project = db.project("calibrate", &FILES.map(|f| (f, "old\n")));
        let (mut cmd, _) = trial_command(&db, &project, "calibrate");
        let started = Instant::now();
        assert!(cmd.status().unwrap().success());
        started.elapsed()
    };
    let batch = 10;
    let mut killed_mid_apply = 0;
    for start in (0..trials).step_by(batch) {
        // Start a batch of runs and kill each at a random moment.
        let mut running = Vec::new();
        let mut mid_apply = Vec::new();
        for t in start..(start + batch).min(trials) {
            let project = db.project(&format!("trial-{t}"), &FILES.map(|f| (f, "old\n")));
            let (mut cmd, _) = trial_command(&db, &project, &format!("trial-{t}"));
            let child = cmd.spawn().unwrap();
            if t % 5 == 0 {
                let (pid, dir) = (child.id(), project.clone());
                mid_apply.push(std::thread::spawn(move || kill_once_applying(pid, &dir)));
                running.push((project, child, None));
            } else {
                let kill_after = span.mul_f64(rand::thread_rng().gen_range(0.05..1.0));
                running.push((project, child, Some(Instant::now() + kill_after)));
            }
        }
        for (_, child, at) in running.iter_mut() {
            let Some(at) = at else { continue };
            tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
            kill(child.id());
        }
        for killer in mid_apply {
            killer.join().unwrap();
        }
        let mut half_applied = Vec::new();
        for (project, child, _) in running.iter_mut() {
            let _ = child.wait();
            let files = contents(project);
            if files.iter().any(|f| f == "new\n") && files.iter().any(|f| f == "old\n") {
                half_applied.push(project.clone());
            }
        }
        killed_mid_apply += half_applied.len();
        // The killed sessions' leases run out; then the next command recovers.
        tokio::time::sleep(TTL + Duration::from_millis(500)).await;
        for (project, _, _) in &running {
            let Some(plan) = plan_of(&db, project) else {
                assert_eq!(contents(project), ["old\n"; 4], "no plan, no change");
                *outcomes
                    .entry("killed before the plan existed".into())
                    .or_default() += 1;
                continue;
            };
            let id = plan["id"].as_str().unwrap().to_string();
            let status = json(&cli(&db, project, &["plan", "status", &id]));
            let state = format!(
                "{}/{}",
                status["plan"]["status"]["phase"], status["plan"]["status"]["state"]
            )
            .replace('"', "");
            assert!(
                !state.ends_with("processing"),
                "trial {}: still {state}",
                project.display()
            );
            let files = contents(project);
            assert!(
                files == ["old\n"; 4] || files == ["new\n"; 4],
                "trial {}: half-applied in {state}: {files:?}",
                project.display()
            );
            let rolled = status["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["reason"].as_str().unwrap().contains("rolled forward"));
            assert!(
                rolled || !half_applied.contains(project),
                "trial {}: killed mid-apply but not rolled forward ({state})",
                project.display()
            );
            *outcomes
                .entry(if rolled {
                    "apply rolled forward".into()
                } else {
                    format!("found {state}")
                })
                .or_default() += 1;
            // Finish the plan from wherever it is.
            finish(&db, project, &id, &state);
            assert_eq!(
                contents(project),
                ["new\n"; 4],
                "trial {} finishes",
                project.display()
            );
        }
    }
    eprintln!("{trials} crash trials on {backend:?} (kills within {span:?}):");
    for (outcome, n) in &outcomes {
        eprintln!("  {n:>3}  {outcome}");
    }
    eprintln!("  {killed_mid_apply:>3}  left half-applied by the kill");
    assert!(
        killed_mid_apply > 0,
        "no kill landed in the middle of an apply: the trials proved nothing about roll-forward"
    );
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// Kill `pid` as soon as its apply has renamed a first file of `project`
/// (applies sleep 30 ms before each file, so three are still to come).
fn kill_once_applying(pid: u32, project: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let new = |f: &&&str| std::fs::read_to_string(project.join(f)).is_ok_and(|c| c == "new\n");
    // A process that exited (a zombie until it is waited for) is left alone.
    let exited = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    };
    while Instant::now() < deadline && !exited() {
        let done = FILES.iter().filter(new).count();
        if done > 0 {
            if done < FILES.len() {
                kill(pid);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `plan run --yes` on `project`, with applies slowed to 30 ms per file.
fn trial_command(db: &TestDb, project: &Path, name: &str) -> (Command, std::path::PathBuf) {
    let action = action_file(
        db.dir.path(),
        name,
        "files",
        "files",
        &[
            ("files", &FILES.join(",")),
            ("content", "new\n"),
            ("delay_ms", "25"),
            ("strategize_ms", "80"),
        ],
    );
    let mut cmd = host_command(&db.url, project);
    cmd.args(["--lock-ttl", "5s", "plan", "run", "--yes"])
        .arg(&action)
        .env(lockstep::workspace::apply::FAULT_DELAY_ENV, "30")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    (cmd, action)
}

fn finish(db: &TestDb, project: &Path, id: &str, state: &str) {
    let ok = |args: &[&str]| {
        let out = cli(db, project, args);
        assert!(
            out.status.success(),
            "{args:?} in {state}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    match state {
        "apply/applied" => {}
        "strategize/queued" | "strategize/errored" => {
            ok(&["plan", "strategize", id]);
            ok(&["plan", "execute", id]);
            ok(&["plan", "apply", id]);
        }
        "strategize/complete" => {
            ok(&["plan", "execute", id]);
            ok(&["plan", "apply", id]);
        }
        "execute/errored" => {
            ok(&["plan", "retry", id]);
            ok(&["plan", "apply", id]);
        }
        "execute/complete" | "apply/errored" => ok(&["plan", "apply", id]),
        other => panic!("unexpected state {other}"),
    }
}

on_both_backends!(crash_trials);
