//! The real `lockstep` binary with the real example plugins (WebAssembly
//! components built from plugins/rust), both backends: each example plugin
//! end to end, two sessions on one plan, a lock conflict delivered inside a
//! plugin, and changes that try to leave the project.

use std::path::PathBuf;

use lockstep_tests::cli::CliProject;
use lockstep_tests::process::{copy_dir, repo_root, signal, stderr};
use lockstep_tests::{on_both_backends, Backend, TestDb};

fn sample(db: &TestDb) -> PathBuf {
    let project = db.dir.path().join("sample-project");
    copy_dir(&repo_root().join("examples/sample-project"), &project);
    std::fs::canonicalize(project).unwrap()
}

const HEADER: &str =
    "// SPDX-License-Identifier: Apache-2.0\n// Copyright the sample project authors.\n\n";

async fn license_header_end_to_end(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let cli = CliProject::new(&db, &project);
    let original = |p: &str| {
        std::fs::read_to_string(repo_root().join("examples/sample-project").join(p)).unwrap()
    };
    let act = repo_root().join("examples/actions/license-header.toml");
    let id = cli.new_plan(&act);
    let proposal = cli.ok(&["plan", "strategize", &id]);
    assert!(proposal.contains("3 of 4"), "{proposal}");
    cli.ok(&["plan", "execute", &id]);
    assert_eq!(
        std::fs::read_to_string(project.join("src/main.rs")).unwrap(),
        original("src/main.rs"),
        "execute writes nothing"
    );
    let before_apply = cli.ok(&["plan", "show", &id, "--diff"]);
    cli.ok(&["plan", "apply", &id]);
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
    let after_apply = cli.ok(&["plan", "show", &id, "--diff"]);
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
    let cli = CliProject::new(&db, &project);
    let act = repo_root().join("examples/actions/replace.toml");
    let out = cli.ok(&["plan", "run", act.to_str().unwrap(), "--yes"]);
    assert!(out.contains("applied"), "{out}");
    let main = std::fs::read_to_string(project.join("src/main.rs")).unwrap();
    let greet = std::fs::read_to_string(project.join("src/greet.rs")).unwrap();
    assert!(greet.contains("format!(\"Hi there, {name}!\")"), "{greet}");
    assert!(
        !main.contains("Hi there"),
        "main.rs has no greeting literal: {main}"
    );
    // A bad regex is the plugin's typed invalid-input error.
    let bad = cli.action(
        "bad-regex",
        "replace",
        &[("find", "(unclosed"), ("regex", "true")],
    );
    let id = cli.new_plan(&bad);
    let out = cli.run(&["plan", "strategize", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid input"), "{}", stderr(&out));
}

async fn second_session_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let cli = CliProject::new(&db, &project);
    let slow = cli.action("slow", "slow", &[("steps", "1"), ("ms", "4000")]);
    let id = cli.new_plan(&slow);
    cli.ok(&["plan", "strategize", &id]);
    let a = cli.spawn(&["plan", "execute", &id]);
    cli.wait_for_lock(&format!("plan:{id}"));
    let b = cli.run(&["plan", "execute", &id]);
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

/// A `lock-probe` plan executing in a child process that holds lease `R`
/// for 4 s (returned once the lease is held), and a strategized
/// `lock-probe` plan asking for `R` with `params`: the child and the two
/// plans' ids.
fn lease_held_by_a_running_plan(
    cli: &CliProject<'_>,
    params: &[(&str, &str)],
) -> (std::process::Child, String, String) {
    let holder = cli.action(
        "probe-a",
        "lock-probe",
        &[("resource", "R"), ("hold_ms", "4000")],
    );
    let mut asked = vec![("resource", "R")];
    asked.extend_from_slice(params);
    let asker = cli.action("probe-b", "lock-probe", &asked);
    let a_id = cli.new_plan(&holder);
    let b_id = cli.new_plan(&asker);
    cli.ok(&["plan", "strategize", &a_id]);
    cli.ok(&["plan", "strategize", &b_id]);
    let a = cli.spawn(&["plan", "execute", &a_id]);
    cli.wait_for_lock("/res:R");
    (a, a_id, b_id)
}

async fn lock_conflict_reaches_the_plugin(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let cli = CliProject::new(&db, &project);
    let (a, a_id, b_id) = lease_held_by_a_running_plan(&cli, &[("hold_ms", "0")]);
    // B's own plan lock is free: B runs, and its plugin gets the conflict as a WIT value.
    cli.ok(&["plan", "execute", &b_id]);
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", stderr(&a));
    let show = |id: &str| -> serde_json::Value {
        serde_json::from_str(cli.ok(&["--json", "plan", "show", id]).trim()).unwrap()
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
        serde_json::from_str(cli.ok(&["--json", "plan", "status", &a_id]).trim()).unwrap();
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
        cli.ok(&["--json", "locks", "list"]).trim(),
        "[]",
        "the plugin's lease was released"
    );
}

async fn changes_leaving_the_project_are_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let cli = CliProject::new(&db, &project);
    let outside = db.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, project.join("link")).unwrap();
    for (mode, path) in [
        ("write-dotdot", "../escaped.txt"),
        ("write-symlink", "link/escaped.txt"),
        ("write-lockstep", ".lockstep/evil"),
    ] {
        let act = cli.action(mode, "hostile", &[("mode", mode)]);
        let id = cli.new_plan(&act);
        cli.ok(&["plan", "strategize", &id]);
        let out = cli.run(&["plan", "execute", &id]);
        assert_eq!(out.status.code(), Some(1), "{mode}");
        assert!(
            stderr(&out).contains(path.split('/').next().unwrap()),
            "{mode}: {}",
            stderr(&out)
        );
        let out = cli.run(&["plan", "apply", &id]);
        assert_eq!(out.status.code(), Some(4), "{mode}: nothing to apply");
    }
    assert!(!db.dir.path().join("escaped.txt").exists());
    assert!(!outside.join("escaped.txt").exists());
    assert!(!project.join(".lockstep/evil").exists());
    // Reads outside the project are denial values, not traps.
    let act = cli.action("read-outside", "hostile", &[("mode", "read-outside")]);
    let id = cli.new_plan(&act);
    cli.ok(&["plan", "strategize", &id]);
    cli.ok(&["plan", "execute", &id]);
    let show: serde_json::Value =
        serde_json::from_str(cli.ok(&["--json", "plan", "show", &id]).trim()).unwrap();
    let summary = show["steps"][0]["summary"].as_str().unwrap();
    assert!(
        summary.contains("Denied") && !summary.contains("root:"),
        "{summary}"
    );
}

/// A plugin that fails its step on a held lease: the message says whose
/// lease it is and until when, that the plugin chose to fail, and what the
/// user can do; it does not offer `--lock-timeout`, which does not wait for
/// plugin leases.
async fn a_plugin_lease_conflict_is_explained_without_a_useless_lock_timeout(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let cli = CliProject::new(&db, &project);
    let (a, _, b_id) = lease_held_by_a_running_plan(&cli, &[("on_conflict", "fail")]);
    let out = cli.run(&["plan", "execute", &b_id, "--lock-timeout", "30s"]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{message}");
    assert!(
        message.contains("error: the plugin's lease `R` (`project:")
            && message.contains("/res:R`) is held by another session"),
        "{message}"
    );
    assert!(message.contains(&format!("pid {}", a.id())), "{message}");
    assert!(
        message.contains("(unless its holder renews it)"),
        "{message}"
    );
    assert!(message.contains("decided how to react"), "{message}");
    assert!(
        message.contains("lockstep locks release project:"),
        "{message}"
    );
    assert!(!message.contains("retry with --lock-timeout"), "{message}");
    assert!(
        !message.contains("renewed while the holder is alive"),
        "{message}"
    );
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", stderr(&a));
}

/// `lockstep locks hold R --for 60s --reason "maintenance window"`, once
/// the lease is held.
fn hold_r(cli: &CliProject<'_>) -> std::process::Child {
    let holding = cli.spawn(&[
        "locks",
        "hold",
        "R",
        "--for",
        "60s",
        "--reason",
        "maintenance window",
    ]);
    cli.wait_for_lock("/res:R");
    holding
}

/// After a plugin failed its step on a held lease, `plan status` says what
/// is true: whose lease it is (the plugin's lease `R`), that another session
/// holds it, who (its operation and pid), and not that a lock was
/// "unavailable".
async fn plan_status_names_the_held_plugin_lease_and_its_holder(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let cli = CliProject::new(&db, &project);
    let holding = hold_r(&cli);
    let asker = cli.action(
        "probe",
        "lock-probe",
        &[("resource", "R"), ("on_conflict", "fail")],
    );
    let id = cli.new_plan(&asker);
    cli.ok(&["plan", "strategize", &id]);
    let out = cli.run(&["plan", "execute", &id]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let status = cli.ok(&["plan", "status", &id]);
    let error = status
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {status}"));
    assert!(
        error.contains("execute failed: the plugin's lease `R` is held by another session"),
        "{error}"
    );
    assert!(error.contains("/res:R` is locked by session"), "{error}");
    assert!(error.contains("maintenance window"), "{error}");
    assert!(error.contains(&format!("pid {}", holding.id())), "{error}");
    assert!(!status.contains("unavailable"), "{status}");
    signal(holding.id(), "TERM");
    assert!(holding.wait_with_output().unwrap().status.success());
}

/// `locks hold R` holds the plugin lease `R` of the project: a plugin asking
/// for it meets the conflict, named with the given reason; SIGTERM releases
/// it.
async fn an_operator_hold_makes_a_plugin_meet_a_conflict_and_sigterm_releases_it(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let cli = CliProject::new(&db, &project);
    let holding = hold_r(&cli);
    let asker = cli.action("probe", "lock-probe", &[("resource", "R")]);
    let id = cli.new_plan(&asker);
    cli.ok(&["plan", "strategize", &id]);
    cli.ok(&["plan", "execute", &id]);
    let show: serde_json::Value =
        serde_json::from_str(cli.ok(&["--json", "plan", "show", &id]).trim()).unwrap();
    let summary = show["steps"][0]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("conflict owner=") && summary.contains("operation=maintenance window"),
        "{summary}"
    );
    let sent = std::time::Instant::now();
    signal(holding.id(), "TERM");
    let out = holding.wait_with_output().unwrap();
    assert!(sent.elapsed() < std::time::Duration::from_secs(5));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("holding `project:") && text.contains("/res:R` as "),
        "{text}"
    );
    assert!(text.contains("released `project:"), "{text}");
    assert_eq!(
        cli.ok(&["--json", "locks", "list"]).trim(),
        "[]",
        "released on SIGTERM"
    );
}

/// `plugin test --hold R` holds the lease while the plugin runs: the report
/// says so, and shows what the plugin did (here: reported the conflict, or
/// failed its step with it).
async fn plugin_test_hold_makes_the_plugin_meet_a_held_lease(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let cli = CliProject::new(&db, &project);
    let report = cli.action("report", "lock-probe", &[("resource", "R")]);
    let fail = cli.action(
        "fail",
        "lock-probe",
        &[("resource", "R"), ("on_conflict", "fail")],
    );
    let test = |action: &PathBuf| {
        cli.run(&[
            "plugin",
            "test",
            "lock-probe",
            "--action",
            action.to_str().unwrap(),
            "--hold",
            "R",
        ])
    };
    let out = test(&report);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("held `project:") && text.contains("/res:R` under owner "),
        "{text}"
    );
    assert!(
        text.contains("probe: conflict owner=")
            && text.contains("operation=held by `lockstep plugin test --hold`"),
        "{text}"
    );
    let out = test(&fail);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{message}");
    assert!(message.contains("/res:R` under owner "), "{message}");
    assert!(
        message.contains("error: the plugin's lease `R`"),
        "{message}"
    );
    assert!(
        message.contains("decided how to react: it failed the step"),
        "{message}"
    );
    // Without --hold the lease is free.
    let out = cli.run(&[
        "plugin",
        "test",
        "lock-probe",
        "--action",
        report.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("probe: acquired project:"));
}

/// After a plugin failure the hint names the plan to retry; after input the
/// plugin refused, it does not suggest a retry (the same input would be
/// refused again).
async fn the_retry_hint_names_the_plan_and_is_not_given_for_invalid_input(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = sample(&db);
    let cli = CliProject::new(&db, &project);
    let bad = cli.action(
        "bad",
        "lock-probe",
        &[("resource", "R"), ("hold_ms", "soon")],
    );
    let id = cli.new_plan(&bad);
    let out = cli.run(&["plan", "strategize", &id]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains("`hold_ms` must be a whole number"),
        "{message}"
    );
    assert!(!message.contains("plan retry"), "{message}");
    assert!(
        message.contains("Fix the params in the action file"),
        "{message}"
    );

    let trap = cli.action("trap", "hostile", &[("mode", "trap")]);
    let id = cli.new_plan(&trap);
    cli.ok(&["plan", "strategize", &id]);
    let out = cli.run(&["plan", "execute", &id]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains(&format!("`lockstep plan retry {id}` runs the phase again")),
        "{message}"
    );
    assert!(!message.contains("retry ID"), "{message}");
    assert!(
        message.contains("error: execute failed: plugin `hostile` trapped")
            && !message.contains(&format!("plan {id}: execute failed")),
        "the id is not part of the message: {message}"
    );

    assert!(
        message.contains("WARN") && !message.contains('\u{1b}'),
        "log lines on a pipe carry no colour: {message:?}"
    );

    // `plan run` names the plan it created.
    let out = cli.run(&["plan", "run", trap.to_str().unwrap(), "--yes"]);
    let message = stderr(&out);
    let created = String::from_utf8_lossy(&out.stdout);
    let run_id = created
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("plan id printed: {created}"));
    assert!(
        message.contains(&format!("`lockstep plan retry {run_id}`")),
        "{created}\n{message}"
    );
}

on_both_backends!(
    license_header_end_to_end,
    replace_end_to_end,
    second_session_is_refused,
    lock_conflict_reaches_the_plugin,
    a_plugin_lease_conflict_is_explained_without_a_useless_lock_timeout,
    plan_status_names_the_held_plugin_lease_and_its_holder,
    an_operator_hold_makes_a_plugin_meet_a_conflict_and_sigterm_releases_it,
    plugin_test_hold_makes_the_plugin_meet_a_held_lease,
    the_retry_hint_names_the_plan_and_is_not_given_for_invalid_input,
    changes_leaving_the_project_are_refused,
);
