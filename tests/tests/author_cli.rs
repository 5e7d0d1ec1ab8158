//! What a plugin author sees from `lockstep plugin test` and `lockstep
//! plugins inspect`, through the real binary with the example plugins:
//! `--expect-unchanged`, the proposal kept when a later phase fails, the
//! `--expect` report for 8-bit text and binary files, the line shown while
//! a component is compiled, and what `inspect` says about a Python
//! component.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lockstep_tests::process::{plugins_dist, stderr, stdout, test_user_dir, workspace_bin};

/// A fixture, an action for `replace` (hello → goodbye) and a scratch
/// folder for expected trees.
struct Authoring {
    dir: tempfile::TempDir,
}

impl Authoring {
    fn new(files: &[(&str, &[u8])]) -> Authoring {
        let dir = tempfile::tempdir().unwrap();
        for (path, bytes) in files {
            let path = dir.path().join("fixture").join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let authoring = Authoring { dir };
        authoring.action(&[("find", "hello"), ("replace", "goodbye")]);
        authoring
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn action(&self, params: &[(&str, &str)]) {
        let mut text = "name = \"t\"\nstrategy = \"x\"\nexecutor = \"x\"\n[params]\n".to_string();
        for (k, v) in params {
            text.push_str(&format!("{k} = \"{v}\"\n"));
        }
        std::fs::write(self.path("action.toml"), text).unwrap();
    }

    /// `lockstep [global] plugin test PLUGIN --project fixture --action
    /// action.toml [extra]`, with the compiled-component cache in `cache`.
    fn test(&self, global: &[&str], plugin: &str, extra: &[&str], cache: &Path) -> Output {
        Command::new(workspace_bin("lockstep"))
            .env("LOCKSTEP_CACHE_DIR", cache)
            .env("LOCKSTEP_CONFIG_DIR", test_user_dir().join("config"))
            .env("NO_COLOR", "1")
            .env_remove("LOCKSTEP_PLUGIN_PATH")
            .args(global)
            .args(["plugin", "test"])
            .arg(plugins_dist().join(format!("{plugin}.wasm")))
            .arg("--project")
            .arg(self.path("fixture"))
            .arg("--action")
            .arg(self.path("action.toml"))
            .args(extra)
            .output()
            .unwrap()
    }
}

fn shared_cache() -> PathBuf {
    test_user_dir().join("cache")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(out).trim())
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(out)))
}

#[test]
fn expect_unchanged_names_each_change_and_passes_when_nothing_changes() {
    let a = Authoring::new(&[("a.txt", b"hello world\n"), ("b.txt", b"other\n")]);
    let out = a.test(&[], "replace", &["--expect-unchanged"], &shared_cache());
    let (text, log) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}\n{log}");
    assert!(
        text.contains(
            "✗ expected no changes, but the plugin changes 1 of 2 files:\n  a.txt  changed\n\
             --- expected/a.txt\n+++ actual/a.txt\n@@ -1 +1 @@\n-hello world\n+goodbye world\n"
        ),
        "{text}"
    );
    assert!(
        log.contains("error: expected no changes, but the plugin changes 1 file: a.txt (changed)"),
        "{log}"
    );
    let out = a.test(
        &["--json"],
        "replace",
        &["--expect-unchanged"],
        &shared_cache(),
    );
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["passed"], false);
    assert_eq!(report["expect"]["unchanged"], true);
    assert_eq!(report["expect"]["differences"][0]["path"], "a.txt");
    assert_eq!(report["expect"]["differences"][0]["kind"], "different");

    // Run on a project the plugin already fixed.
    a.action(&[("find", "absent"), ("replace", "goodbye")]);
    let out = a.test(&[], "replace", &["--expect-unchanged"], &shared_cache());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with("no changes\n✓ no changes, as expected (2 files)\n"),
        "{}",
        stdout(&out)
    );
    let out = a.test(
        &[],
        "replace",
        &["--expect-unchanged", "--expect", "x"],
        &shared_cache(),
    );
    assert_eq!(out.status.code(), Some(2), "one expectation at a time");
}

#[test]
fn a_phase_failing_after_the_proposal_keeps_the_proposal_in_the_output() {
    let a = Authoring::new(&[("a.txt", b"hello\n")]);
    a.action(&[("mode", "count,trap")]);
    let out = a.test(&[], "hostile", &[], &shared_cache());
    let (text, log) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}\n{log}");
    assert!(
        text.ends_with(
            "proposal: Misbehave: count,trap\n  1. Misbehave: count\n  2. Misbehave: trap\n"
        ),
        "{text}"
    );
    assert!(
        !text.contains("no changes"),
        "Execute did not finish: {text}"
    );
    assert!(
        log.contains("error: execute failed: plugin `hostile` trapped: "),
        "{log}"
    );
    assert!(
        !log.contains("plan retry"),
        "the scratch plan is gone: {log}"
    );

    let out = a.test(&["--json"], "hostile", &[], &shared_cache());
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["passed"], false);
    assert_eq!(report["proposal"]["summary"], "Misbehave: count,trap");
    assert_eq!(report["proposal"]["steps"].as_array().unwrap().len(), 2);
    assert_eq!(report["error"]["kind"], "plugin");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("execute failed: plugin `hostile` trapped"),
        "{report}"
    );
}

#[test]
fn the_expect_report_heads_every_file_and_diffs_latin1_text_by_lines() {
    let a = Authoring::new(&[
        ("a.txt", b"hello\n"),
        ("menu.txt", b"caf\xe9\ncr\xe8me\n"),
        ("logo.bin", b"\x00\x01\x02"),
    ]);
    let expected = a.path("expected");
    std::fs::create_dir(&expected).unwrap();
    std::fs::write(expected.join("a.txt"), "goodbye\n").unwrap();
    std::fs::write(expected.join("menu.txt"), b"caf\xe9\ncr\xeame\n").unwrap();
    std::fs::write(expected.join("logo.bin"), b"\x00\x09\x02").unwrap();
    let out = a.test(
        &[],
        "replace",
        &["--expect", expected.to_str().unwrap()],
        &shared_cache(),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(
        text.contains(
            "--- expected/menu.txt\n+++ actual/menu.txt\nnot UTF-8: bytes that are not UTF-8 are shown as \\xNN\n\
             @@ -1,2 +1,2 @@\n caf\\xe9\n-cr\\xeame\n+cr\\xe8me\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "--- expected/logo.bin\n+++ actual/logo.bin\nbinary contents differ (3 bytes expected, 3 in the result); \
             1 of the first 3 bytes differs, the first at byte 1 (0x09 expected, 0x01 in the result)\n"
        ),
        "{text}"
    );
}

#[test]
fn the_first_use_of_a_component_says_that_it_is_compiled() {
    let a = Authoring::new(&[("a.txt", b"hello\n")]);
    let line = "compiling replace (first use, cached afterwards)…";
    let fresh = tempfile::tempdir().unwrap();
    let out = a.test(&[], "replace", &[], fresh.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(line), "{}", stderr(&out));
    let out = a.test(&[], "replace", &[], fresh.path());
    assert!(
        !stderr(&out).contains("compiling"),
        "cached: {}",
        stderr(&out)
    );
    // JSON for a program (stderr is a pipe here): no progress line.
    let fresh = tempfile::tempdir().unwrap();
    let out = a.test(&["--json"], "replace", &[], fresh.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("compiling"), "{}", stderr(&out));
}

#[test]
fn inspect_shows_the_description_and_sets_apart_what_the_host_ignores() {
    let wasm = plugins_dist().join("trailing-whitespace.wasm");
    assert!(
        wasm.is_file(),
        "{} is missing: build the Python plugins with `just plugins`",
        wasm.display()
    );
    let out = Command::new(workspace_bin("lockstep"))
        .env("LOCKSTEP_CACHE_DIR", shared_cache())
        .args(["plugins", "inspect"])
        .arg(&wasm)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("\nabout      Strips trailing spaces"),
        "{text}"
    );
    assert!(
        text.contains(
            "exports    lockstep:plugin/strategy@0.2.0 (strategist)\n           \
             lockstep:plugin/execution@0.2.0 (executor)\n\
             ignored    exports (not part of lockstep:plugin; the host does not call it)\n"
        ),
        "{text}"
    );
}
