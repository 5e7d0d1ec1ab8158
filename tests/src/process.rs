//! Running the `lockstep` binaries as real processes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A binary of this workspace, next to the running test's `deps/` folder.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --workspace`",
        bin.display()
    );
    bin
}

/// The test host binary (the CLI with the Rust fixtures as plugins).
pub fn test_host() -> PathBuf {
    workspace_bin("lockstep-test-host")
}

/// A `Command` for the test host with `--database-url` and `--project` set.
pub fn host_command(db_url: &str, project: &Path) -> Command {
    let mut cmd = Command::new(test_host());
    cmd.arg("--database-url")
        .arg(db_url)
        .arg("--project")
        .arg(project);
    cmd.env_remove("LOCKSTEP_PLUGIN_PATH");
    cmd
}

/// Run and capture; panic with the output if it could not start.
pub fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run lockstep-test-host")
}

/// Run `cmd` to completion, capturing its output, and report the child's
/// peak resident set size in KiB: the kernel's high-water mark (`VmHWM` in
/// `/proc/<pid>/status`), sampled every 2 ms while the child runs. The
/// mark only grows, so the last sample holds every peak but one reached in
/// the child's final 2 ms. `None` where `/proc` is not available.
pub fn output_with_peak_rss(mut cmd: Command) -> (Output, Option<u64>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = None;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .as_deref()
            .and_then(high_water_mark_kib)
        {
            peak = Some(peak.unwrap_or(0).max(kib));
        }
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, peak)
}

/// `VmHWM` of a `/proc/<pid>/status` text, in KiB.
fn high_water_mark_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The stdout of `lockstep ARGS`, panicking with both outputs unless it
/// succeeded.
pub fn succeeded(args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "lockstep {args:?}: {}\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Write an action file into `dir` and return its path.
pub fn action_file(
    dir: &Path,
    name: &str,
    strategy: &str,
    executor: &str,
    params: &[(&str, &str)],
) -> PathBuf {
    let mut text = format!(
        "name = \"{name}\"\nstrategy = \"{strategy}\"\nexecutor = \"{executor}\"\n[params]\n"
    );
    for (k, v) in params {
        text.push_str(&format!("{k} = {}\n", toml_string(v)));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn toml_string(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// Where the test-artifacts crate put the example plugins.
pub fn plugins_dist() -> PathBuf {
    lockstep_test_artifacts::dist()
}

/// The tests' stand-in for the user's cache and config directories (in
/// the build's output folder, shared by every test of this build): the
/// compiled-component cache is `cache/` and the trust records `config/`.
/// A test that trusts projects gives itself a config directory of its own.
pub fn test_user_dir() -> PathBuf {
    lockstep_test_artifacts::user_dir()
}

/// A `Command` for the real `lockstep` binary with the example plugins on
/// its plugin path, `--database-url` / `--project` set, and the tests' own
/// cache and config directories ([`test_user_dir`]).
pub fn lockstep_command(db_url: &str, project: &Path) -> Command {
    let mut cmd = Command::new(workspace_bin("lockstep"));
    cmd.arg("--database-url")
        .arg(db_url)
        .arg("--project")
        .arg(project);
    cmd.env("LOCKSTEP_PLUGIN_PATH", plugins_dist())
        .env("LOCKSTEP_CACHE_DIR", test_user_dir().join("cache"))
        .env("LOCKSTEP_CONFIG_DIR", test_user_dir().join("config"));
    cmd
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Send `signal` (e.g. `TERM`, `STOP`) to process `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    assert!(Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success());
}
