//! A Python or JavaScript plugin that throws, or returns a value of the
//! wrong type, fails with a sentence in its author's terms: the export and
//! the step, the exception and its message, or the field and the type it
//! needs — not a trap reason and a wasm backtrace, which `--verbose` shows.
//!
//! The plugins are `tests/guests/failing-{py,js}` (see their README),
//! built here with the toolchains `just plugins` installs into
//! `plugins/python/.venv` and `plugins/js/node_modules`, and run through
//! `lockstep plugin test`.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use lockstep_tests::process::{stderr, stdout, workspace_bin};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(what: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("guest-failures")
        .join(what)
}

/// A tool `just plugins` installs, or a panic saying so.
fn tool(relative: &str) -> PathBuf {
    let path = repo().join(relative);
    assert!(
        path.exists(),
        "{} is missing: install the Python and JavaScript toolchains with `just plugins`",
        path.display()
    );
    path
}

/// A stable name for `files` and `flags`: a build is reused while they
/// are unchanged.
fn fingerprint(files: &[PathBuf], flags: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        std::fs::read(file).unwrap().hash(&mut hasher);
    }
    flags.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The guest `name` (a folder of `tests/guests`) as `NAME.wasm` with its
/// manifest, built by `build(source folder, output)` unless a build of the
/// same sources is there.
fn built(
    name: &str,
    source: &str,
    flags: &str,
    build: impl FnOnce(&Path, &Path) -> Command,
) -> PathBuf {
    let sources = repo().join("tests/guests").join(source);
    let wit = repo().join("wit/v0.2.0/plugin.wit");
    let entry = ["app.py", "plugin.js"]
        .iter()
        .map(|f| sources.join(f))
        .find(|p| p.exists())
        .unwrap();
    let dir = scratch(&format!(
        "{name}-{}",
        fingerprint(&[entry.clone(), wit], flags)
    ));
    let wasm = dir.join(format!("{name}.wasm"));
    if wasm.is_file() {
        return wasm;
    }
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(&entry, src.join(entry.file_name().unwrap())).unwrap();
    let manifest = std::fs::read_to_string(sources.join("plugin.toml")).unwrap();
    let manifest = manifest.replace(
        &format!("name = \"{source}\""),
        &format!("name = \"{name}\""),
    );
    std::fs::write(dir.join(format!("{name}.toml")), manifest).unwrap();
    let partial = dir.join(format!("{name}.wasm.tmp"));
    let out = build(&src, &partial).output().unwrap();
    assert!(
        out.status.success(),
        "building {name} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    std::fs::rename(&partial, &wasm).unwrap();
    wasm
}

fn python_guest() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        built("failing-py", "failing-py", "", |src, out| {
            let mut cmd = Command::new(tool("plugins/python/.venv/bin/componentize-py"));
            cmd.env_remove("VIRTUAL_ENV")
                .current_dir(src)
                .args(["-q", "-d"])
                .arg(repo().join("wit/v0.2.0"))
                .args(["-w", "plugin", "componentize", "-p", ".", "app", "-o"])
                .arg(out);
            cmd
        })
    })
}

/// The JavaScript guest, with stdio (so that the engine can say why it
/// stops) or without it, as the templates build.
fn js_guest(stdio: bool) -> PathBuf {
    static BUILDS: Mutex<()> = Mutex::new(());
    let _one = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let name = if stdio {
        "failing-js"
    } else {
        "failing-js-silent"
    };
    let mut disabled = vec!["random", "clocks", "http", "fetch-event"];
    if !stdio {
        disabled.push("stdio");
    }
    built(name, "failing-js", &disabled.join(" "), |src, out| {
        let mut cmd = Command::new(tool("plugins/js/node_modules/.bin/componentize-js"));
        cmd.current_dir(src)
            .arg("plugin.js")
            .arg("--wit")
            .arg(repo().join("wit/v0.2.0"))
            .args(["--world-name", "plugin", "--disable"])
            .args(&disabled)
            .arg("--out")
            .arg(out);
        cmd
    })
}

/// `lockstep plugin test WASM` on a one-file fixture with the action
/// param `modes`, and the error it ends with (stderr from `error: `).
fn harness(wasm: &Path, modes: &str, extra: &[&str]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("fixture")).unwrap();
    std::fs::write(dir.path().join("fixture/a.txt"), "a\n").unwrap();
    let action = dir.path().join("action.toml");
    std::fs::write(
        &action,
        format!(
            "name = \"fail\"\nstrategy = \"x\"\nexecutor = \"x\"\n[params]\nmodes = \"{modes}\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(workspace_bin("lockstep"))
        .env("LOCKSTEP_CACHE_DIR", scratch("components"))
        .env("NO_COLOR", "1")
        .env_remove("LOCKSTEP_PLUGIN_PATH")
        .args(extra)
        .args(["plugin", "test"])
        .arg(wasm)
        .arg("--project")
        .arg(dir.path().join("fixture"))
        .arg("--action")
        .arg(&action)
        .output()
        .unwrap();
    let log = stderr(&out);
    let error = log[log
        .find("error: ")
        .unwrap_or_else(|| panic!("no error: {log}"))..]
        .to_string();
    assert_eq!(out.status.code(), Some(1), "{log}");
    (out, error)
}

/// Neither the trap reason nor the backtrace nor advice a plugin cannot
/// follow, but one line saying how to see the raw trap.
fn only_the_sentence(error: &str, plugin: &str) {
    assert!(!error.contains("wasm backtrace:"), "{error}");
    assert!(!error.contains("unreachable"), "{error}");
    assert!(!error.contains("RUST_BACKTRACE"), "{error}");
    assert!(
        error.contains(&format!(
            "in plugin `{plugin}` ({plugin}.wasm): --verbose shows the trap and its wasm backtrace ("
        )),
        "{error}"
    );
}

#[test]
fn a_python_exception_keeps_its_message_and_names_the_step() {
    let wasm = python_guest();
    let (_, error) = harness(wasm, "ok,throw", &[]);
    assert!(
        error.starts_with(
            "error: execute failed: plugin `failing-py` trapped: `execute` (step `step-2`) raised \
             ValueError: no parser for a.txt (app.py, line 15, in _parse); an exception that \
             escapes an export stops the plugin: catch it and raise \
             `Err(PluginError_Permanent(str(e)))`"
        ),
        "{error}"
    );
    only_the_sentence(&error, "failing-py");

    let (_, error) = harness(wasm, "strategize-throw", &[]);
    assert!(
        error.starts_with(
            "error: strategize failed: plugin `failing-py` trapped: `strategize` raised \
             RuntimeError: cannot plan this (app.py, line 22, in strategize)"
        ),
        "{error}"
    );

    // The raw trap on request.
    let (_, error) = harness(wasm, "throw", &["--verbose"]);
    assert!(
        error.contains("in plugin `failing-py` (failing-py.wasm):\nwasm trap: wasm `unreachable` instruction executed\n")
            && error.contains("wasm backtrace:"),
        "{error}"
    );
}

#[test]
fn a_python_value_of_the_wrong_type_names_the_field_and_the_type() {
    let (_, error) = harness(python_guest(), "wrong-type", &[]);
    assert!(
        error.starts_with(
            "error: execute failed: plugin `failing-py` trapped: `execute` (step `step-1`) \
             returned a `str` ('text') where `bytes` is needed: a write's `contents` must be \
             `bytes`; use text.encode('utf-8')\n"
        ),
        "{error}"
    );
    only_the_sentence(&error, "failing-py");
}

#[test]
fn a_javascript_exception_keeps_its_message_and_names_the_step() {
    let wasm = js_guest(true);
    let (_, error) = harness(&wasm, "throw", &[]);
    assert!(
        error.starts_with(
            "error: execute failed: plugin `failing-js` trapped: `execute` (step `step-1`) threw \
             Error: no parser for a.txt; a thrown value that is not a plugin-error stops the \
             plugin: catch it and throw `{ tag: 'permanent', val: String(e) }`"
        ),
        "{error}"
    );
    only_the_sentence(&error, "failing-js");
    let (_, error) = harness(&wasm, "strategize-throw", &[]);
    assert!(
        error.starts_with(
            "error: strategize failed: plugin `failing-js` trapped: `strategize` threw Error: \
             cannot plan this;"
        ),
        "{error}"
    );
}

#[test]
fn a_javascript_value_of_the_wrong_type_names_the_field_and_the_type() {
    let (_, error) = harness(&js_guest(true), "ok,wrong-type", &[]);
    assert!(
        error.starts_with(
            "error: execute failed: plugin `failing-js` trapped: `execute` (step `step-2`) \
             returned a number where a string is needed: `summary` or a change's `path` must \
             be a string\n"
        ),
        "{error}"
    );
    only_the_sentence(&error, "failing-js");
}

/// Built with `--disable stdio`, as the templates are, the engine cannot
/// say why it stops: the message says so, and how to find out.
#[test]
fn a_javascript_plugin_without_stderr_is_told_why_the_reason_is_lost() {
    let (_, error) = harness(&js_guest(false), "throw", &[]);
    assert!(
        error.starts_with(
            "error: execute failed: plugin `failing-js-silent` trapped: `execute` (step \
             `step-1`) stopped (wasm trap: wasm `unreachable` instruction executed) and the \
             component cannot write to stderr"
        ),
        "{error}"
    );
    assert!(error.contains("build without `--disable stdio`"), "{error}");
}
