//! Driving the real `lockstep` binary on one project and one database, as a
//! user would: run a command, insist that it succeeds, read its JSON,
//! create plans, wait until a lock shows up.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::process::{action_file, lockstep_command, succeeded};
use crate::TestDb;

/// A project directory and the database the binary is pointed at.
#[derive(Debug, Clone, Copy)]
pub struct CliProject<'a> {
    /// The database.
    pub db: &'a TestDb,
    /// The project root.
    pub root: &'a Path,
}

impl<'a> CliProject<'a> {
    /// The project at `root` on `db`.
    pub fn new(db: &'a TestDb, root: &'a Path) -> Self {
        CliProject { db, root }
    }

    /// Run `lockstep ARGS` and capture its output.
    pub fn run(&self, args: &[&str]) -> Output {
        lockstep_command(&self.db.url, self.root)
            .args(args)
            .output()
            .unwrap()
    }

    /// Run `lockstep ARGS`, panicking with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, &self.run(args))
    }

    /// Run `lockstep --json ARGS` and parse what it printed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(self.ok(&all).trim()).unwrap()
    }

    /// Start `lockstep ARGS` in the background.
    pub fn spawn(&self, args: &[&str]) -> Child {
        lockstep_command(&self.db.url, self.root)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `plan new ACTION`: the new plan's id.
    pub fn new_plan(&self, action: &Path) -> String {
        self.json(&["plan", "new", action.to_str().unwrap()])["plan_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Write an action file (same plugin for both roles) next to the database.
    pub fn action(&self, name: &str, plugin: &str, params: &[(&str, &str)]) -> PathBuf {
        action_file(self.db.dir.path(), name, plugin, plugin, params)
    }

    /// Wait until `lockstep locks list` mentions `needle`.
    pub fn wait_for_lock(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ok(&["--json", "locks", "list"]).contains(needle) {
            assert!(Instant::now() < deadline, "{needle} was never locked");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
