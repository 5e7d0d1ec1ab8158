//! The real `lockstep` binary with the real example plugins (WebAssembly
//! components built from plugins/rust), both backends: each example plugin
//! end to end, two sessions on one plan, a lock conflict delivered inside a
//! plugin, and changes that try to leave the project.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use lockstep_tests::process::{copy_dir, lockstep_command, repo_root, stderr, stdout};
use lockstep_tests::{on_both_backends, Backend, TestDb};

fn sample(db: &TestDb) -> PathBuf {
    let project = db.dir.path().join("sample-project");
    copy_dir(&repo_root().join("examples/sample-project"), &project);
    std::fs::canonicalize(project).unwrap()
}

fn lockstep(db: &TestDb, project: &Path, args: &[&str]) -> Output {
    lockstep_command(&db.url, project)
        .args(args)
        .output()
        .unwrap()
}

fn ok(db: &TestDb, project: &Path, args: &[&str]) -> String {
    let out = lockstep(db, project, args);
    assert!(
        out.status.success(),
        "lockstep {args:?}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn new_plan(db: &TestDb, project: &Path, action: &Path) -> String {
    let out = ok(
        db,
        project,
        &["--json", "plan", "new", action.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v["plan_id"].as_str().unwrap().to_string()
}

fn action(db: &TestDb, name: &str, plugin: &str, params: &[(&str, &str)]) -> PathBuf {
    lockstep_tests::process::action_file(db.dir.path(), name, plugin, plugin, params)
}

fn spawn(db: &TestDb, project: &Path, args: &[&str]) -> Child {
    lockstep_command(&db.url, project)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for_lock(db: &TestDb, project: &Path, resource: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ok(db, project, &["--json", "locks", "list"]).contains(resource) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{resource} was never locked");
}

const HEADER: &str =
    "// SPDX-License-Identifier: Apache-2.0\n// Copyright the sample project authors.\n\n";

async fn license_header_end_to_end(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let original = |p: &str| {
        std::fs::read_to_string(repo_root().join("examples/sample-project").join(p)).unwrap()
    };
    let act = repo_root().join("examples/actions/license-header.toml");
    let id = new_plan(&db, &project, &act);
    let proposal = ok(&db, &project, &["plan", "strategize", &id]);
    assert!(proposal.contains("3 of 4"), "{proposal}");
    ok(&db, &project, &["plan", "execute", &id]);
    assert_eq!(
        std::fs::read_to_string(project.join("src/main.rs")).unwrap(),
        original("src/main.rs"),
        "execute writes nothing"
    );
    let before_apply = ok(&db, &project, &["plan", "show", &id, "--diff"]);
    ok(&db, &project, &["plan", "apply", &id]);
    assert_eq!(
        std::fs::read_to_string(project.join("src/main.rs")).unwrap(),
        format!("{HEADER}{}", original("src/main.rs"))
    );
    assert_eq!(
        std::fs::read_to_string(project.join("src/greet.rs")).unwrap(),
        format!("{HEADER}{}", original("src/greet.rs"))
    );
    assert_eq!(
        std::fs::read_to_string(project.join("src/lib.rs")).unwrap(),
        original("src/lib.rs"),
        "already had it"
    );
    let script = original("scripts/release.rs");
    let (shebang, rest) = script.split_once('\n').unwrap();
    assert_eq!(
        std::fs::read_to_string(project.join("scripts/release.rs")).unwrap(),
        format!("{shebang}\n{HEADER}{rest}")
    );
    assert_eq!(
        std::fs::read_to_string(project.join("README.md")).unwrap(),
        original("README.md")
    );
    // The diff shows the same change before and after apply.
    let after_apply = ok(&db, &project, &["plan", "show", &id, "--diff"]);
    let diff_of = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with(['+', '-', '@']))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(diff_of(&before_apply), diff_of(&after_apply));
    assert!(
        after_apply.contains("+++ b/src/main.rs")
            && after_apply.contains("+// SPDX-License-Identifier: Apache-2.0")
    );
    assert_eq!(
        diff_of(&after_apply)
            .iter()
            .filter(|l| l.starts_with("+++"))
            .count(),
        3
    );
}

async fn replace_end_to_end(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let act = repo_root().join("examples/actions/replace.toml");
    let out = ok(
        &db,
        &project,
        &["plan", "run", act.to_str().unwrap(), "--yes"],
    );
    assert!(out.contains("applied"), "{out}");
    let main = std::fs::read_to_string(project.join("src/main.rs")).unwrap();
    let greet = std::fs::read_to_string(project.join("src/greet.rs")).unwrap();
    assert!(greet.contains("format!(\"Hi there, {name}!\")"), "{greet}");
    assert!(
        !main.contains("Hi there"),
        "main.rs has no greeting literal: {main}"
    );
    // A bad regex is the plugin's typed invalid-input error.
    let bad = action(
        &db,
        "bad-regex",
        "replace",
        &[("find", "(unclosed"), ("regex", "true")],
    );
    let id = new_plan(&db, &project, &bad);
    let out = lockstep(&db, &project, &["plan", "strategize", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid input"), "{}", stderr(&out));
}

async fn second_session_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let slow = action(&db, "slow", "slow", &[("steps", "1"), ("ms", "4000")]);
    let id = new_plan(&db, &project, &slow);
    ok(&db, &project, &["plan", "strategize", &id]);
    let a = spawn(&db, &project, &["plan", "execute", &id]);
    wait_for_lock(&db, &project, &format!("plan:{id}"));
    let b = lockstep(&db, &project, &["plan", "execute", &id]);
    assert_eq!(b.status.code(), Some(3), "{}", stderr(&b));
    let message = stderr(&b);
    assert!(
        message.contains(&format!(":{}:", a.id())),
        "names A's session: {message}"
    );
    assert!(message.contains(&format!("pid {}", a.id())), "{message}");
    assert!(message.contains("lockstep locks release"), "{message}");
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", stderr(&a));
}

async fn lock_conflict_reaches_the_plugin(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let holder = action(
        &db,
        "probe-a",
        "lock-probe",
        &[("resource", "R"), ("hold_ms", "4000")],
    );
    let asker = action(
        &db,
        "probe-b",
        "lock-probe",
        &[("resource", "R"), ("hold_ms", "0")],
    );
    let a_id = new_plan(&db, &project, &holder);
    let b_id = new_plan(&db, &project, &asker);
    ok(&db, &project, &["plan", "strategize", &a_id]);
    ok(&db, &project, &["plan", "strategize", &b_id]);
    let a = spawn(&db, &project, &["plan", "execute", &a_id]);
    wait_for_lock(&db, &project, "/res:R");
    // B's own plan lock is free: B runs, and its plugin gets the conflict as a WIT value.
    ok(&db, &project, &["plan", "execute", &b_id]);
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", stderr(&a));
    let show = |id: &str| -> serde_json::Value {
        serde_json::from_str(ok(&db, &project, &["--json", "plan", "show", id]).trim()).unwrap()
    };
    let b_summary = show(&b_id)["steps"][0]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(b_summary.starts_with("conflict owner="), "{b_summary}");
    let a_summary = show(&a_id)["steps"][0]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        a_summary.starts_with("acquired project:") && a_summary.contains("/res:R"),
        "{a_summary}"
    );
    let a_owner = b_summary
        .trim_start_matches("conflict owner=")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let events: serde_json::Value =
        serde_json::from_str(ok(&db, &project, &["--json", "plan", "status", &a_id]).trim())
            .unwrap();
    let executed_by = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "execute/processing")
        .unwrap()["actor"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        a_owner, executed_by,
        "the conflict names the session that ran A"
    );
    assert!(
        b_summary.contains(&format!("operation=execute plan {a_id}")),
        "{b_summary}"
    );
    assert_eq!(
        ok(&db, &project, &["--json", "locks", "list"]).trim(),
        "[]",
        "the plugin's lease was released"
    );
}

async fn changes_leaving_the_project_are_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let outside = db.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, project.join("link")).unwrap();
    for (mode, path) in [
        ("write-dotdot", "../escaped.txt"),
        ("write-symlink", "link/escaped.txt"),
        ("write-lockstep", ".lockstep/evil"),
    ] {
        let act = action(&db, mode, "hostile", &[("mode", mode)]);
        let id = new_plan(&db, &project, &act);
        ok(&db, &project, &["plan", "strategize", &id]);
        let out = lockstep(&db, &project, &["plan", "execute", &id]);
        assert_eq!(out.status.code(), Some(1), "{mode}");
        assert!(
            stderr(&out).contains(path.split('/').next().unwrap()),
            "{mode}: {}",
            stderr(&out)
        );
        let out = lockstep(&db, &project, &["plan", "apply", &id]);
        assert_eq!(out.status.code(), Some(4), "{mode}: nothing to apply");
    }
    assert!(!db.dir.path().join("escaped.txt").exists());
    assert!(!outside.join("escaped.txt").exists());
    assert!(!project.join(".lockstep/evil").exists());
    // Reads outside the project are denial values, not traps.
    let act = action(&db, "read-outside", "hostile", &[("mode", "read-outside")]);
    let id = new_plan(&db, &project, &act);
    ok(&db, &project, &["plan", "strategize", &id]);
    ok(&db, &project, &["plan", "execute", &id]);
    let show: serde_json::Value =
        serde_json::from_str(ok(&db, &project, &["--json", "plan", "show", &id]).trim()).unwrap();
    let summary = show["steps"][0]["summary"].as_str().unwrap();
    assert!(
        summary.contains("Denied") && !summary.contains("root:"),
        "{summary}"
    );
}

on_both_backends!(
    license_header_end_to_end,
    replace_end_to_end,
    second_session_is_refused,
    lock_conflict_reaches_the_plugin,
    changes_leaving_the_project_are_refused,
);
