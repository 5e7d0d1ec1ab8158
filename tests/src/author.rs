//! Running what a plugin author runs: `lockstep plugin new`, a project's
//! `build.sh` and `test.sh`, and `lockstep plugin test`, with the author's
//! toolchains (cargo, python3 and pip, node and npm).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::process::{repo_root, stderr, stdout, workspace_bin};

/// Where the toolchains keep what is worth keeping between runs (cargo's
/// target folder, the compiled-component cache, a shared virtualenv).
#[derive(Debug, Clone)]
pub struct Author {
    cache: PathBuf,
}

impl Author {
    /// An author whose caches live under `cache` (a test passes a folder
    /// of `CARGO_TARGET_TMPDIR`).
    pub fn new(cache: PathBuf) -> Self {
        Self { cache }
    }

    /// The cache `what`.
    pub fn cache(&self, what: &str) -> PathBuf {
        self.cache.join(what)
    }

    /// `program` in `dir` with none of this test's cargo or lockstep
    /// settings, as an author's shell would run it; `LOCKSTEP` names this
    /// workspace's binary.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if (key.starts_with("CARGO_") && key != "CARGO_HOME")
                || key.starts_with("LOCKSTEP_")
                || [
                    "RUSTFLAGS",
                    "RUSTC_WRAPPER",
                    "RUSTC",
                    "RUSTDOC",
                    "VIRTUAL_ENV",
                    "RUST_BACKTRACE",
                ]
                .contains(&key.as_str())
            {
                cmd.env_remove(&key);
            }
        }
        cmd.env("LOCKSTEP", workspace_bin("lockstep"))
            .env("LOCKSTEP_CACHE_DIR", self.cache("components"))
            .env("CARGO_TARGET_DIR", self.cache("rust-target"))
            .env("NO_COLOR", "1");
        cmd
    }

    /// `lockstep ARGS` in `dir`.
    pub fn lockstep(&self, dir: &Path, args: &[&str]) -> Output {
        self.command(workspace_bin("lockstep"), dir)
            .args(args)
            .output()
            .expect("run lockstep")
    }

    /// `bash build.sh` in the project `dir`, with one virtualenv for every
    /// Python project (so componentize-py is installed once) and
    /// componentize-js from `plugins/js` when it was installed there (so the
    /// build skips `npm ci`).
    pub fn build(&self, dir: &Path) -> Output {
        let mut build = self.command("bash", dir);
        build.arg("build.sh").env("PLUGIN_VENV", self.cache("venv"));
        let bin = repo_root().join("plugins/js/node_modules/.bin/componentize-js");
        if bin.exists() {
            build.env("COMPONENTIZE_JS", bin);
        }
        build.output().expect("run build.sh")
    }
}

/// Fails the test with the output of `out` unless it succeeded.
pub fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}
