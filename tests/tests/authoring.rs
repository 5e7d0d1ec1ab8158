//! `lockstep plugin new` and `lockstep plugin test` as a plugin author uses
//! them, in each language: a new project is created, its own `test.sh` runs
//! its unit tests, its `build.sh` and the harness against its fixture (which
//! passes); then an expected file is changed and the harness exits 1 naming
//! it, in text and in JSON.
//!
//! The builds use the real toolchains: cargo with the `wasm32-wasip2`
//! target, python3 with pip (componentize-py from PyPI, into the project's
//! own virtualenv) and node with npm (`npm ci` of the template's lockfile).
//! Cargo's target folder and the compiled-component cache are kept under
//! the test target folder between runs, so only a first run compiles the
//! Rust template's dependencies.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use lockstep_tests::author::{check, Author};
use lockstep_tests::process::{stderr, stdout};

/// One language at a time: the builds are heavy, and the timings printed
/// are then each language's own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The author, with caches kept between runs.
fn author() -> Author {
    Author::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("authoring"))
}

fn lockstep(dir: &Path, args: &[&str]) -> std::process::Output {
    author().lockstep(dir, args)
}

const HARNESS: [&str; 9] = [
    "plugin",
    "test",
    "PLUGIN",
    "--project",
    "tests/fixture",
    "--action",
    "tests/action.toml",
    "--expect",
    "tests/expected",
];

fn author_flow(lang: &str, unit_tests_passed: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let parent = tempfile::tempdir().unwrap();
    let name = format!("todo-{lang}");
    let wasm = format!("dist/{name}.wasm");
    let harness: Vec<&str> = HARNESS
        .iter()
        .map(|a| if *a == "PLUGIN" { wasm.as_str() } else { a })
        .collect();

    let out = lockstep(
        parent.path(),
        &["plugin", "new", &name, "--lang", lang, "--dir", "."],
    );
    check("plugin new", &out);
    let project = parent.path().join(&name);
    assert!(stdout(&out).contains("bash build.sh"), "{}", stdout(&out));
    let again = lockstep(parent.path(), &["plugin", "new", &name, "--lang", lang]);
    assert_eq!(again.status.code(), Some(1), "an existing project is kept");
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    // The template's own flow: unit tests, build.sh, the harness.
    let started = Instant::now();
    let out = author()
        .command("bash", &project)
        .arg("test.sh")
        .output()
        .unwrap();
    let flow = started.elapsed();
    check("test.sh", &out);
    let (text, log) = (stdout(&out), stderr(&out));
    let all = format!("{text}\n{log}");
    assert!(all.contains(unit_tests_passed), "unit tests ran: {all}");
    assert!(text.contains(&format!("built {wasm}")), "{all}");
    assert!(
        text.contains("✓ the result matches tests/expected (3 files)"),
        "{all}"
    );
    assert!(
        text.contains("-- todo: write the parser") && text.contains("+- TODO: write the parser"),
        "the diff is shown: {text}"
    );
    assert!(project.join(&wasm).is_file());
    assert!(project.join(format!("dist/{name}.toml")).is_file());

    // A wrong expectation: exit 1, the file named, the difference shown.
    let expected = project.join("tests/expected/notes.md");
    let right = std::fs::read_to_string(&expected).unwrap();
    std::fs::write(&expected, right.replace("FIXME:", "FIXME -")).unwrap();
    let started = Instant::now();
    let out = lockstep(&project, &harness);
    let harness_run = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("differs from tests/expected in 1 file: notes.md (different)"),
        "{}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("✗ the result differs"), "{text}");
    assert!(
        text.contains("--- expected/notes.md\n+++ actual/notes.md\n")
            && text.contains("-- FIXME - the lexer drops tabs\n+- FIXME: the lexer drops tabs\n"),
        "{text}"
    );

    // The same as one JSON document on stdout.
    let mut args = vec!["--json"];
    args.extend(&harness);
    let out = lockstep(&project, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(&out)));
    assert_eq!(report["passed"], false);
    assert_eq!(report["plugin"]["name"], name.as_str());
    assert_eq!(report["proposal"]["steps"].as_array().unwrap().len(), 2);
    let differences = report["expect"]["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{report}");
    assert_eq!(differences[0]["path"], "notes.md");
    assert_eq!(differences[0]["kind"], "different");

    // An expected file the plugin does not produce, and one it produces
    // that is not expected.
    std::fs::write(&expected, right).unwrap();
    std::fs::write(project.join("tests/expected/extra.md"), "x\n").unwrap();
    std::fs::remove_file(project.join("tests/expected/src/done.c")).unwrap();
    let out = lockstep(&project, &harness);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("in 2 files: extra.md (missing), src/done.c (extra)"),
        "{}",
        stderr(&out)
    );
    eprintln!(
        "{lang}: test.sh (unit tests, build, harness) {:.1} s; one harness run {:.1} s",
        flow.as_secs_f64(),
        harness_run.as_secs_f64()
    );
}

#[test]
fn a_rust_plugin_from_the_template() {
    author_flow("rust", "test result: ok. 2 passed");
}

#[test]
fn a_python_plugin_from_the_template() {
    author_flow("python", "Ran 3 tests");
}

#[test]
fn a_javascript_plugin_from_the_template() {
    author_flow("js", "# pass 3");
}

/// Every file under `dir` with its contents.
fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let contents = std::fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), contents);
            }
        }
    }
    files
}

/// The mistake reported by an author: an executor returning the new text
/// as a string where the WIT type is `list<u8>`. `source` is the file of
/// the `lang` template to break, `encoded` the right expression there and
/// `wrong` the mistake. The step must fail with `message`, and nothing be
/// applied.
fn a_string_for_bytes_is_refused(
    lang: &str,
    source: &str,
    encoded: &str,
    wrong: &str,
    message: &str,
) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let parent = tempfile::tempdir().unwrap();
    let out = lockstep(
        parent.path(),
        &["plugin", "new", "strings", "--lang", lang, "--dir", "."],
    );
    check("plugin new", &out);
    let project = parent.path().join("strings");
    let source = project.join(source);
    let right = std::fs::read_to_string(&source).unwrap();
    assert!(right.contains(encoded), "{right}");
    std::fs::write(&source, right.replace(encoded, wrong)).unwrap();

    check("build.sh", &author().build(&project));

    let fixture = project.join("tests/fixture");
    let before = tree(&fixture);
    let harness: Vec<&str> = HARNESS
        .iter()
        .map(|a| {
            if *a == "PLUGIN" {
                "dist/strings.wasm"
            } else {
                a
            }
        })
        .collect();
    let out = lockstep(&project, &harness);
    let (text, log) = (stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}\n{log}");
    assert!(log.contains(message), "{text}\n{log}");
    assert!(
        !text.contains("the result"),
        "nothing was applied or compared: {text}"
    );
    assert_eq!(tree(&fixture), before);
}

/// componentize-js lowers a string given for `list<u8>` as zero bytes: the
/// files were emptied before the template (now the SDK's `executor`)
/// checked the outcome.
#[test]
fn a_string_returned_as_contents_by_a_javascript_executor_is_refused_and_writes_nothing() {
    a_string_for_bytes_is_refused(
        "js",
        "plugin.js",
        "sdk.writeText(path, result)",
        "{ tag: 'write', val: { path, contents: result } }",
        "step `file-1`: change `notes.md`: `contents` must be a Uint8Array (got a string); \
         use new TextEncoder().encode(text)",
    );
}

#[test]
fn a_str_returned_as_contents_by_a_python_executor_is_refused_and_writes_nothing() {
    a_string_for_bytes_is_refused(
        "python",
        "app.py",
        "sdk.write_text(path, new)",
        "sdk.Change_Write(sdk.FileWrite(path=path, contents=new))",
        "step `file-1`: change `notes.md`: `contents` must be bytes (got str); \
         use text.encode('utf-8')",
    );
}

/// A syntax error in a new `lang` project: `build.sh` stops before it
/// installs anything (`installed` is not created) or runs the slow build,
/// and stderr starts with `FILE:LINE: SyntaxError: message` for the line
/// where `right` was replaced by `wrong`, followed only by that line and a
/// caret, with no backtrace.
fn a_syntax_error_is_reported_in_one_line(
    lang: &str,
    source: &str,
    right: &str,
    wrong: &str,
    message: &str,
    installed: &str,
) {
    let parent = tempfile::tempdir().unwrap();
    let out = lockstep(
        parent.path(),
        &["plugin", "new", "typo", "--lang", lang, "--dir", "."],
    );
    check("plugin new", &out);
    let project = parent.path().join("typo");
    let file = project.join(source);
    let text = std::fs::read_to_string(&file).unwrap();
    let line = 1 + text[..text.find(right).expect(right)].matches('\n').count();
    std::fs::write(&file, text.replacen(right, wrong, 1)).unwrap();

    // Without COMPONENTIZE_JS: a JavaScript build that went on would run
    // `npm ci`.
    let out = author()
        .command("bash", &project)
        .arg("build.sh")
        .output()
        .unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}\n{log}", stdout(&out));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[0],
        format!("{source}:{line}: SyntaxError: {message}"),
        "{log}"
    );
    assert!(lines.len() <= 3, "the error, its line and a caret: {log}");
    assert!(lines[1].contains(wrong.trim()), "{log}");
    assert!(!project.join(installed).exists(), "{installed} was made");
    assert!(!project.join("dist/typo.wasm").exists());
}

#[test]
fn a_syntax_error_in_a_python_project_is_one_line_before_anything_is_installed() {
    a_syntax_error_is_reported_in_one_line(
        "python",
        "app.py",
        "-> sdk.PlanProposal:",
        "-> sdk.PlanProposal",
        "expected ':'",
        ".venv",
    );
}

#[test]
fn a_syntax_error_in_a_javascript_project_is_one_line_before_anything_is_installed() {
    a_syntax_error_is_reported_in_one_line(
        "js",
        "plugin.js",
        "new sdk.Params(action.params);",
        "new sdk.Params(action.params;",
        "missing ) after argument list",
        "node_modules",
    );
}

/// An error while the build runs the module's top level, past the syntax
/// check: stderr starts with the author's error as `first` (after
/// `FILE:LINE`, the line `appended` lands on), without the tool's own
/// backtrace, and says how to see the whole output.
fn an_error_at_build_time_comes_first(lang: &str, source: &str, appended: &str, first: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let parent = tempfile::tempdir().unwrap();
    let author = author();
    check(
        "plugin new",
        &author.lockstep(
            parent.path(),
            &["plugin", "new", "late", "--lang", lang, "--dir", "."],
        ),
    );
    let project = parent.path().join("late");
    let file = project.join(source);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(appended);
    std::fs::write(&file, &text).unwrap();
    let line = text.lines().count();

    let mut build = author.command("bash", &project);
    build
        .arg("build.sh")
        .env("PLUGIN_VENV", author.cache("venv"))
        .env("RUST_BACKTRACE", "1");
    let bin =
        lockstep_tests::process::repo_root().join("plugins/js/node_modules/.bin/componentize-js");
    if bin.exists() {
        build.env("COMPONENTIZE_JS", bin);
    }
    let out = build.output().unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}\n{log}", stdout(&out));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], format!("{source}:{line}{first}"), "{log}");
    assert!(
        !log.contains("Stack backtrace") && !log.contains("componentize.js:"),
        "{log}"
    );
    assert!(
        lines.last().unwrap().contains("bash build.sh --verbose"),
        "{log}"
    );
}

#[test]
fn a_python_error_at_build_time_is_reported_as_the_authors_first() {
    an_error_at_build_time_comes_first(
        "python",
        "app.py",
        "\nboom = sdk.no_such_name\n",
        ": AttributeError: module 'lockstep_sdk' has no attribute 'no_such_name'",
    );
}

#[test]
fn a_javascript_error_at_build_time_is_reported_as_the_authors_first() {
    an_error_at_build_time_comes_first(
        "js",
        "plugin.js",
        "\nconst boom = undefined.x;\n",
        ":14: TypeError: can't access property \"x\" of undefined",
    );
}
