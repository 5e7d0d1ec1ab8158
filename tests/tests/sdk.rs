//! The Python and JavaScript SDKs' own tests (`sdk/python/tests`,
//! `sdk/js/test`) and the unit tests of the example plugins built on them,
//! run with python3 and node as their READMEs say. (The Rust SDK is a member
//! of the workspace: `cargo test` runs its tests.)

use std::path::Path;
use std::process::Command;

use lockstep_tests::process::{repo_root, stderr, stdout};

/// Runs `program ARGS` in `dir` (relative to the repository) and returns
/// what it printed, failing the test unless it succeeded.
fn run(dir: &str, program: &str, args: &[&str]) -> String {
    let dir = repo_root().join(dir);
    let out = Command::new(program)
        .args(args)
        .current_dir(&dir)
        .env_remove("PYTHONPATH")
        .output()
        .unwrap_or_else(|e| panic!("{program} in {}: {e}", dir.display()));
    let all = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "{program} {args:?} in {}:\n{all}",
        dir.display()
    );
    all
}

#[test]
fn the_python_sdk_passes_its_tests() {
    let out = run(
        "sdk/python",
        "python3",
        &["-m", "unittest", "discover", "-s", "tests"],
    );
    assert!(out.contains("\nOK"), "{out}");
}

#[test]
fn the_javascript_sdk_passes_its_tests() {
    let out = run(
        "sdk/js",
        "node",
        &["--import", "./test/register.js", "--test", "test/"],
    );
    assert!(out.contains("# fail 0"), "{out}");
}

#[test]
fn the_example_plugins_on_the_sdk_pass_their_unit_tests() {
    let out = run(
        "plugins/python/trailing-whitespace",
        "python3",
        &["-m", "unittest"],
    );
    assert!(out.contains("\nOK"), "{out}");
    // node --test finds the *.test.js files itself.
    assert!(Path::new(&repo_root().join("plugins/js/json-format/format.test.js")).is_file());
    let out = run("plugins/js", "node", &["--test"]);
    assert!(out.contains("# fail 0"), "{out}");
}
