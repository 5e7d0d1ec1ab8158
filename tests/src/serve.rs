//! A real `lockstep serve` process on a loopback port, for the service
//! tests: started with `--listen 127.0.0.1:0`, its address read from the
//! first line it prints, killed when dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::process::{lockstep_command, signal, succeeded};

/// A running `lockstep serve`.
#[derive(Debug)]
pub struct ServeProc {
    child: Child,
    /// Kept open: the server's stdout is not closed under it.
    _stdout: BufReader<std::process::ChildStdout>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    db_url: String,
    root: std::path::PathBuf,
}

impl ServeProc {
    /// Start `lockstep serve` on `db_url`, with `root` as its projects
    /// root, quick worker timings, and `extra` arguments.
    pub fn start(db_url: &str, root: &Path, extra: &[&str]) -> ServeProc {
        let mut cmd = lockstep_command(db_url, root);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--projects-root"])
            .arg(root)
            .args([
                "--ttl",
                "5s",
                "--poll",
                "100ms",
                "--backoff",
                "200ms",
                "--grace",
                "5s",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start lockstep serve");
        let mut first = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut first).unwrap();
        let Some(addr) = first.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("lockstep serve did not start: {first}\n{err}");
        };
        ServeProc {
            base: addr.to_string(),
            child,
            _stdout: out,
            db_url: db_url.to_string(),
            root: root.to_path_buf(),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new API token with `scope` (`lockstep tokens create`).
    pub fn token(&self, scope: &str, name: &str) -> String {
        let args = [
            "--json", "tokens", "create", "--scope", scope, "--name", name,
        ];
        let out = lockstep_command(&self.db_url, &self.root)
            .args(args)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(succeeded(&args, &out).trim()).unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait (at most `within`) for the exit: its status and
    /// stderr.
    pub fn terminate(mut self, within: Duration) -> (ExitStatus, String) {
        signal(self.pid(), "TERM");
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
                return (status, err);
            }
            assert!(
                Instant::now() < end,
                "lockstep serve did not stop within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
