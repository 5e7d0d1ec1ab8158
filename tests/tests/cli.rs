//! The CLI as a user runs it, both backends: `plan run`, `plan show
//! --diff`, exit codes and JSON errors, malformed actions, a crash in the
//! middle of an apply rolled forward, force-release fencing a live holder,
//! and SIGTERM releasing everything.

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lockstep_tests::process::{action_file, host_command, run, signal, stderr, stdout};
use lockstep_tests::{on_both_backends, Backend, TestDb};

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(stdout(out).trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn plan_new(db: &TestDb, project: &std::path::Path, action: &std::path::Path) -> String {
    let mut cmd = host_command(&db.url, project);
    cmd.args(["--json", "plan", "new"]).arg(action);
    let out = run(cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    json(&out)["plan_id"].as_str().unwrap().to_string()
}

fn plan(db: &TestDb, project: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = host_command(&db.url, project);
    cmd.arg("plan").args(args);
    run(cmd)
}

async fn run_show_and_exit_codes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a.txt", "one\n")]);
    let act = action_file(
        db.dir.path(),
        "append",
        "files",
        "files",
        &[("files", "a.txt"), ("content", "two\n"), ("mode", "append")],
    );
    let out = plan(&db, &project, &["run", act.to_str().unwrap(), "--yes"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("+two"), "the diff is shown: {text}");
    assert!(text.contains("applied"), "{text}");
    assert_eq!(
        std::fs::read_to_string(project.join("a.txt")).unwrap(),
        "one\ntwo\n"
    );

    // plan show --diff on the applied plan shows the same change.
    let list = plan(&db, &project, &["list"]);
    let id = stdout(&list)
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let show = plan(&db, &project, &["show", &id, "--diff"]);
    let shown = stdout(&show);
    assert!(
        shown.contains("--- a/a.txt") && shown.contains("+++ b/a.txt") && shown.contains("+two"),
        "{shown}"
    );

    // Exit 4: invalid transition, with a JSON error.
    let out = plan(&db, &project, &["execute", &id]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("apply/applied"));
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "plan", "execute", &id]);
    assert_eq!(json(&run(cmd))["error"]["kind"], "invalid_transition");

    // Exit 5: drift.
    let id = executed_files_plan(&db, &project, "write", "a.txt", "x");
    std::fs::write(project.join("a.txt"), "edited\n").unwrap();
    let out = plan(&db, &project, &["apply", &id]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("a.txt"));
    assert_eq!(
        std::fs::read_to_string(project.join("a.txt")).unwrap(),
        "edited\n"
    );

    // Without --yes and without a terminal, run refuses to apply.
    let act = action_file(
        db.dir.path(),
        "ask",
        "files",
        "files",
        &[("files", "b.txt"), ("content", "b")],
    );
    let out = plan(&db, &project, &["run", act.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(!project.join("b.txt").exists());

    // `plan run --yes` and `plan apply` print the same JSON document (run
    // adds the paths).
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "plan", "run", act.to_str().unwrap(), "--yes"]);
    let ran = json(&run(cmd));
    assert_eq!(ran["status"], "apply/applied", "{ran}");
    assert_eq!(ran["files"], 1, "{ran}");
    assert_eq!(ran["changes"], serde_json::json!(["b.txt"]), "{ran}");
    let id = executed_files_plan(&db, &project, "again", "b.txt", "c");
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "plan", "apply", &id]);
    assert_eq!(
        json(&run(cmd)),
        serde_json::json!({ "plan_id": id, "status": "apply/applied", "files": 1 })
    );
}

async fn malformed_actions_name_line_and_field(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let bad = db.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nstrategy = \"files\"\nexecutor = \"files\"\n[params]\nfiles = 3\n",
    )
    .unwrap();
    let out = plan(&db, &project, &["new", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 5"), "{}", stderr(&out));
    std::fs::write(
        &bad,
        "name = \"x\"\nstrategy = \"nope\"\nexecutor = \"files\"\n",
    )
    .unwrap();
    let out = plan(&db, &project, &["new", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    let out = plan(&db, &project, &["status", "no-such-plan"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no-such-plan"));
}

/// A plan of the `files` plugin writing `content` to each of `files`
/// (comma-separated), created as `name`, strategized and executed.
fn executed_files_plan(
    db: &TestDb,
    project: &std::path::Path,
    name: &str,
    files: &str,
    content: &str,
) -> String {
    let act = action_file(
        db.dir.path(),
        name,
        "files",
        "files",
        &[("files", files), ("content", content)],
    );
    let id = plan_new(db, project, &act);
    assert!(plan(db, project, &["strategize", &id]).status.success());
    assert!(plan(db, project, &["execute", &id]).status.success());
    id
}

async fn crash_mid_apply_rolls_forward(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a", "a"), ("b", "b"), ("c", "c")]);
    let id = executed_files_plan(&db, &project, "abc", "a,b,c", "NEW");
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--lock-ttl", "5s", "plan", "apply", &id])
        .env(lockstep::workspace::apply::FAULT_STOP_AFTER_ENV, "1");
    let out = run(cmd);
    assert!(!out.status.success(), "the process died mid-apply");
    let contents = || ["a", "b", "c"].map(|f| std::fs::read_to_string(project.join(f)).unwrap());
    assert_eq!(
        contents(),
        ["NEW", "b", "c"],
        "stopped after one file of three"
    );
    // The dead process's leases run out after their TTL (or an operator
    // force-releases them); then the next command finds apply/processing
    // with a journal and no live holder, and rolls forward.
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "plan", "status", &id]);
    assert_eq!(
        json(&run(cmd))["plan"]["status"]["state"],
        "processing",
        "still leased by the dead process"
    );
    tokio::time::sleep(lockstep::locks::MIN_TTL + Duration::from_millis(500)).await;
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "plan", "status", &id]);
    let status = json(&run(cmd));
    assert_eq!(status["plan"]["status"]["state"], "applied", "{status}");
    assert_eq!(contents(), ["NEW", "NEW", "NEW"]);
    assert!(status["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["reason"].as_str().unwrap().contains("rolled forward")));
}

fn wait_for_lock(db: &TestDb, project: &std::path::Path, resource: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut cmd = host_command(&db.url, project);
        cmd.args(["--json", "locks", "list"]);
        let out = run(cmd);
        if stdout(&out).contains(resource) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{resource} was never locked");
}

/// A strategized `slow` plan whose execute runs in a background process
/// (with `global` options) and holds the plan lock.
fn slow_execute_holding_the_lock(
    db: &TestDb,
    project: &std::path::Path,
    global: &[&str],
) -> (String, std::process::Child) {
    let act = action_file(
        db.dir.path(),
        "slow",
        "slow",
        "slow",
        &[("steps", "1"), ("ms", "30000")],
    );
    let id = plan_new(db, project, &act);
    assert!(plan(db, project, &["strategize", &id]).status.success());
    let mut holder = host_command(&db.url, project);
    holder
        .args(global)
        .args(["plan", "execute", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let holder = holder.spawn().unwrap();
    wait_for_lock(db, project, &format!("plan:{id}"));
    (id, holder)
}

async fn force_release_fences_a_live_holder(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let (id, holder) = slow_execute_holding_the_lock(&db, &project, &["--lock-ttl", "5s"]);
    let resource = format!("plan:{id}");
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["locks", "release", &resource]);
    assert_ne!(run(cmd).status.code(), Some(0), "release requires --force");
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["locks", "release", &resource, "--force"]);
    let out = run(cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    // The holder's heartbeat finds its lease gone and aborts the phase.
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("was lost"), "{}", stderr(&out));
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "plan", "status", &id]);
    let status = json(&run(cmd));
    assert_eq!(status["plan"]["status"]["state"], "errored", "{status}");
}

/// A stopped process, continued on drop (also when the test fails).
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        signal(pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

async fn a_session_stopped_past_its_lease_reports_the_takeover(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    // A runs a 3 s execute on a 5 s lease and is stopped mid-step.
    let act = action_file(
        db.dir.path(),
        "slow",
        "slow",
        "slow",
        &[("steps", "1"), ("ms", "3000")],
    );
    let id = plan_new(&db, &project, &act);
    assert!(plan(&db, &project, &["strategize", &id]).status.success());
    let mut a = host_command(&db.url, &project);
    a.args(["--lock-ttl", "5s", "plan", "execute", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut a = a.spawn().unwrap();
    // Stop A once the phase has started (its first progress line).
    let mut lines = std::io::BufReader::new(a.stdout.take().unwrap()).lines();
    let (started, phase) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let first = lines.next();
        let _ = started.send(first);
        for _ in lines {}
    });
    let first = phase.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first.unwrap().unwrap(), "▸ execute");
    let stopped = Stopped::new(a.id());
    // B is refused while A's lease runs, then takes the plan over (recovering
    // it to execute/errored) and completes the phase.
    let deadline = Instant::now() + Duration::from_secs(30);
    let b = loop {
        let out = plan(&db, &project, &["execute", &id]);
        if out.status.code() != Some(3) || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(b.status.success(), "{}", stderr(&b));
    // A wakes up: its write is refused, and it says why.
    drop(stopped);
    let a = a.wait_with_output().unwrap();
    let said = stderr(&a);
    assert_eq!(a.status.code(), Some(1), "{said}");
    assert!(said.contains("lost to another session"), "{said}");
    assert!(said.contains("the plan is now execute/complete"), "{said}");
    assert!(!said.contains("The plan is errored"), "{said}");
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "plan", "status", &id]);
    let status = json(&run(cmd));
    assert_eq!(status["plan"]["status"]["phase"], "execute", "{status}");
    assert_eq!(status["plan"]["status"]["state"], "complete", "{status}");
    assert_eq!(status["changes"], 1, "B's changeset stands: {status}");
}

async fn sigterm_releases_and_leaves_the_plan_retryable(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let (id, holder) = slow_execute_holding_the_lock(&db, &project, &[]);
    let sent = Instant::now();
    signal(holder.id(), "TERM");
    let out = holder.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "shut down within 2 s ({:?})",
        sent.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "locks", "list"]);
    assert_eq!(
        json(&run(cmd)),
        serde_json::json!([]),
        "every lock released"
    );
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "plan", "status", &id]);
    let status = json(&run(cmd));
    assert_eq!(status["plan"]["status"]["state"], "errored");
    assert!(status["plan"]["error"]
        .as_str()
        .unwrap()
        .contains("interrupted"));
}

/// Every name in `dir` (not recursive), sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An apply that fails while staging leaves the old tree (no temp file, no
/// new directory) and a plan that applies on retry; one that fails after
/// its first rename is journaled, and the retry rolls it forward to the
/// new tree.
async fn a_failed_apply_leaves_the_old_tree_or_the_new_tree(backend: Backend) {
    use lockstep::workspace::apply::{FAULT_FAIL_COMMIT_ENV, FAULT_FAIL_STAGE_ENV};
    let db = TestDb::new(backend).await;
    for (fault, name) in [
        (FAULT_FAIL_STAGE_ENV, "stage"),
        (FAULT_FAIL_COMMIT_ENV, "commit"),
    ] {
        let project = db.project(name, &[("a", "old"), ("b", "old")]);
        let id = executed_files_plan(&db, &project, name, "a,n/m/new,b", "NEW");
        let before = names(&project);
        let mut cmd = host_command(&db.url, &project);
        // Staging fails at `b`, after `n/m/` was created for `n/m/new`;
        // the rename of `n/m/new` fails after `a` was renamed.
        let k = if fault == FAULT_FAIL_STAGE_ENV {
            "3"
        } else {
            "2"
        };
        cmd.args(["--json", "plan", "apply", &id]).env(fault, k);
        let out = run(cmd);
        assert!(!out.status.success(), "{name}: the apply failed");
        // The JSON error on stdout.
        let err = stdout(&out);
        assert!(err.contains("injected fault"), "{name}: {err}");
        let contents = || ["a", "b"].map(|f| std::fs::read_to_string(project.join(f)).unwrap());
        if fault == FAULT_FAIL_STAGE_ENV {
            assert!(err.contains("nothing was written"), "{err}");
            assert_eq!(names(&project), before, "no temp file, no new directory");
            assert_eq!(contents(), ["old", "old"]);
        } else {
            assert!(err.contains("apply stopped after 1 of 3 file(s)"), "{err}");
            assert!(err.contains("lockstep plan retry"), "{err}");
        }
        let mut cmd = host_command(&db.url, &project);
        cmd.args(["--json", "plan", "status", &id]);
        let status = json(&run(cmd));
        assert_eq!(status["plan"]["status"]["state"], "errored", "{status}");
        let out = plan(&db, &project, &["retry", &id]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(contents(), ["NEW", "NEW"], "{name}");
        assert_eq!(
            std::fs::read_to_string(project.join("n/m/new")).unwrap(),
            "NEW"
        );
        assert_eq!(names(&project), ["a", "b", "n"], "{name}: no temp file");
        let mut cmd = host_command(&db.url, &project);
        cmd.args(["--json", "plan", "status", &id]);
        let status = json(&run(cmd));
        assert_eq!(status["plan"]["status"]["state"], "applied", "{status}");
    }
}

/// A crash mid-apply, then `src/` is swapped for a symlink out of the
/// project before the next command: the roll-forward validates the paths
/// it reads back from the database and refuses to write through the link;
/// once the folder is back, retrying finishes the apply.
async fn roll_forward_does_not_follow_a_directory_replaced_by_a_symlink(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a", "a"), ("src/b", "b")]);
    let outside = db.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let id = executed_files_plan(&db, &project, "ab", "a,src/b", "NEW");
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--lock-ttl", "5s", "plan", "apply", &id])
        .env(lockstep::workspace::apply::FAULT_STOP_AFTER_ENV, "1");
    assert!(!run(cmd).status.success(), "the process died mid-apply");
    assert_eq!(std::fs::read_to_string(project.join("a")).unwrap(), "NEW");
    std::fs::rename(project.join("src"), project.join("src.moved")).unwrap();
    std::os::unix::fs::symlink(&outside, project.join("src")).unwrap();
    tokio::time::sleep(lockstep::locks::MIN_TTL + Duration::from_millis(500)).await;
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "plan", "status", &id]);
    let status = json(&run(cmd));
    assert_eq!(status["plan"]["status"]["state"], "errored", "{status}");
    let error = status["plan"]["error"].as_str().unwrap();
    assert!(
        error.contains("roll-forward failed") && error.contains("goes through a symlink"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing was written through the symlink"
    );
    std::fs::remove_file(project.join("src")).unwrap();
    std::fs::rename(project.join("src.moved"), project.join("src")).unwrap();
    let out = plan(&db, &project, &["retry", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(project.join("src/b")).unwrap(),
        "NEW"
    );
}

/// A `files` plan writing `d/x` in a project where `d` is a file: Execute
/// refuses the change and the plan is execute/errored; once `d` is gone,
/// a retry can succeed.
fn plan_errored_in_execute(db: &TestDb, name: &str) -> (std::path::PathBuf, String) {
    let project = db.project(name, &[("d", "a file where a directory is needed")]);
    let act = action_file(
        db.dir.path(),
        name,
        "files",
        "files",
        &[("files", "d/x"), ("content", "new\n")],
    );
    let id = plan_new(db, &project, &act);
    assert!(plan(db, &project, &["strategize", &id]).status.success());
    let out = plan(db, &project, &["execute", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    std::fs::remove_file(project.join("d")).unwrap();
    (project, id)
}

/// `plan retry` of a failed Execute stops after Execute and says that the
/// plan is not applied and how to apply it; `plan retry --continue` goes on
/// to Apply (here with --yes), and refuses to apply unasked without it.
async fn retry_says_what_is_left_and_continue_runs_it(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (project, id) = plan_errored_in_execute(&db, "plain");
    let out = plan(&db, &project, &["retry", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("execute/complete"), "{text}");
    assert!(
        text.contains("The plan is executed, not applied")
            && text.contains(&format!("`lockstep plan apply {id}` writes its changes"))
            && text.contains(&format!("`lockstep plan retry {id} --continue`")),
        "{text}"
    );
    assert!(!project.join("d").exists(), "nothing applied");

    let (project, id) = plan_errored_in_execute(&db, "unasked");
    let out = plan(&db, &project, &["retry", &id, "--continue"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "not applying without confirmation; plan {id} is ready"
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("+new"),
        "the diff is shown: {}",
        stdout(&out)
    );
    assert!(!project.join("d").exists(), "nothing applied");

    let (project, id) = plan_errored_in_execute(&db, "continued");
    let out = plan(&db, &project, &["retry", &id, "--continue", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("✓ plan {id} applied: 1 file(s) written")),
        "{text}"
    );
    assert!(!text.contains("not applied"), "{text}");
    assert_eq!(
        std::fs::read_to_string(project.join("d/x")).unwrap(),
        "new\n"
    );
    let mut cmd = host_command(&db.url, &project);
    cmd.args(["--json", "plan", "status", &id]);
    assert_eq!(json(&run(cmd))["plan"]["status"]["state"], "applied");
    let out = plan(&db, &project, &["retry", &id, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "--yes needs --continue");
}

on_both_backends!(
    run_show_and_exit_codes,
    retry_says_what_is_left_and_continue_runs_it,
    malformed_actions_name_line_and_field,
    crash_mid_apply_rolls_forward,
    force_release_fences_a_live_holder,
    a_session_stopped_past_its_lease_reports_the_takeover,
    sigterm_releases_and_leaves_the_plan_retryable,
    a_failed_apply_leaves_the_old_tree_or_the_new_tree,
    roll_forward_does_not_follow_a_directory_replaced_by_a_symlink,
);
