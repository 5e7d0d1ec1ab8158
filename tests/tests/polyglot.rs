//! The Python (componentize-py) and JavaScript (componentize-js) example
//! plugins through the real binary on SQLite: each end to end, a plan whose
//! strategy is Python and whose executor is JavaScript, and each receiving a
//! lock conflict through WIT and returning it (exit 3 naming the holder).
//! They are built by `just plugins` (the README's test command runs it).

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use lockstep_tests::process::{action_file, lockstep_command, plugins_dist, stderr, stdout};
use lockstep_tests::{Backend, TestDb};

fn require(name: &str) {
    assert!(
        plugins_dist().join(format!("{name}.wasm")).is_file(),
        "{name}.wasm is missing from {}: build the Python and JavaScript plugins with `just plugins`",
        plugins_dist().display()
    );
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
    serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["plan_id"]
        .as_str()
        .unwrap()
        .to_string()
}

const MESSY: &str = "{\"b\": 1,   \n \"a\": [1,2]}  \n";
const FORMATTED: &str = "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2\n  ]\n}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugin_end_to_end() {
    require("trailing-whitespace");
    let db = TestDb::new(Backend::Sqlite).await;
    let project = db.project(
        "p",
        &[("a.txt", "one  \ntwo\t\nthree"), ("clean.txt", "ok\n")],
    );
    let act = action_file(
        db.dir.path(),
        "tw",
        "trailing-whitespace",
        "trailing-whitespace",
        &[("globs", "**/*.txt")],
    );
    ok(
        &db,
        &project,
        &["plan", "run", act.to_str().unwrap(), "--yes"],
    );
    assert_eq!(
        std::fs::read_to_string(project.join("a.txt")).unwrap(),
        "one\ntwo\nthree\n"
    );
    assert_eq!(
        std::fs::read_to_string(project.join("clean.txt")).unwrap(),
        "ok\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_plugin_end_to_end() {
    require("json-format");
    let db = TestDb::new(Backend::Sqlite).await;
    let project = db.project("p", &[("data.json", "{\"b\":1,\"a\":[1,2]}")]);
    let act = action_file(
        db.dir.path(),
        "jf",
        "json-format",
        "json-format",
        &[("indent", "2")],
    );
    ok(
        &db,
        &project,
        &["plan", "run", act.to_str().unwrap(), "--yes"],
    );
    assert_eq!(
        std::fs::read_to_string(project.join("data.json")).unwrap(),
        FORMATTED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_strategy_with_javascript_executor() {
    require("trailing-whitespace");
    require("json-format");
    let db = TestDb::new(Backend::Sqlite).await;
    let project = db.project("p", &[("data.json", MESSY), ("notes.txt", "keep  \n")]);
    let act = action_file(
        db.dir.path(),
        "mixed",
        "trailing-whitespace",
        "json-format",
        &[("globs", "**/*.json")],
    );
    let id = new_plan(&db, &project, &act);
    ok(&db, &project, &["plan", "strategize", &id]);
    ok(&db, &project, &["plan", "execute", &id]);
    ok(&db, &project, &["plan", "apply", &id]);
    assert_eq!(
        std::fs::read_to_string(project.join("data.json")).unwrap(),
        FORMATTED
    );
    assert_eq!(
        std::fs::read_to_string(project.join("notes.txt")).unwrap(),
        "keep  \n",
        "not matched by the globs"
    );
}

/// While a `lock-probe` plan holds the plugin's lease, the plugin receives
/// `lock-error::conflict` and returns it: the command exits 3 naming the holder.
async fn conflict_is_returned(plugin: &str, file: (&str, &str)) {
    require(plugin);
    let db = TestDb::new(Backend::Sqlite).await;
    let project = db.project("p", &[file]);
    let holder = action_file(
        db.dir.path(),
        "hold",
        "lock-probe",
        "lock-probe",
        &[("resource", plugin), ("hold_ms", "6000")],
    );
    let act = action_file(db.dir.path(), "work", plugin, plugin, &[]);
    let hold_id = new_plan(&db, &project, &holder);
    let id = new_plan(&db, &project, &act);
    ok(&db, &project, &["plan", "strategize", &hold_id]);
    ok(&db, &project, &["plan", "strategize", &id]);
    let holding = lockstep_command(&db.url, &project)
        .args(["plan", "execute", &hold_id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok(&db, &project, &["--json", "locks", "list"]).contains(&format!("/res:{plugin}")) {
        assert!(Instant::now() < deadline, "the probe never took its lease");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = lockstep(&db, &project, &["--json", "plan", "execute", &id]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let err: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(err["error"]["kind"], "lock_conflict");
    assert!(
        err["error"]["resource"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/res:{plugin}")),
        "{err}"
    );
    assert_eq!(
        err["error"]["holder"]["pid"].as_i64(),
        Some(holding.id() as i64),
        "{err}"
    );
    assert!(
        err["error"]["operation"]
            .as_str()
            .unwrap()
            .contains(&hold_id),
        "{err}"
    );
    assert!(holding.wait_with_output().unwrap().status.success());
    // Once the holder is gone, a retry goes through.
    ok(&db, &project, &["plan", "retry", &id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugin_returns_a_lock_conflict() {
    conflict_is_returned("trailing-whitespace", ("a.txt", "x  \n")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_plugin_returns_a_lock_conflict() {
    conflict_is_returned("json-format", ("a.json", "{\"a\":1}")).await;
}
