//! Hostile plugins against the real `lockstep` binary: the `hostile`
//! fixture (plugins/rust/hostile) returns huge outputs, recurses without
//! end, floods and abuses leases, logs without end, reads at the size cap
//! and names odd paths. Each test checks the typed error or outcome, that
//! nothing leaked (files, leases), and that a normal plan runs afterwards.
//!
//! Every `plan execute` of a hostile plan is run with its peak resident set
//! size sampled (see [`output_with_peak_rss`]); it must stay under
//! [`RSS_BOUND_MIB`]. Run with `--nocapture` to see the figures
//! (docs/perf/hostile.md records them).

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lockstep_tests::process::{
    action_file, copy_dir, lockstep_command, output_with_peak_rss, repo_root, stderr, stdout,
};
use lockstep_tests::{on_both_backends, Backend, TestDb};

/// The most resident memory a `lockstep plan execute` may reach while a
/// hostile plugin runs (the plugin's own memory, 256 MiB by default,
/// included).
const RSS_BOUND_MIB: u64 = 600;

/// A copy of the sample project on a fresh database.
struct Project {
    db: TestDb,
    root: PathBuf,
    backend: Backend,
}

impl Project {
    async fn new(backend: Backend) -> Project {
        let db = TestDb::new(backend).await;
        let root = db.dir.path().join("sample-project");
        copy_dir(&repo_root().join("examples/sample-project"), &root);
        let root = std::fs::canonicalize(root).unwrap();
        let project = Project { db, root, backend };
        // Each process after the first loads the plugins from the
        // compiled-component cache instead of compiling them.
        project.ok(&["init"]);
        project
    }

    fn lockstep(&self, args: &[&str]) -> Output {
        lockstep_command(&self.db.url, &self.root)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.lockstep(args);
        assert!(
            out.status.success(),
            "lockstep {args:?}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(self.ok(&all).trim()).unwrap()
    }

    /// A strategized plan of the `hostile` plugin in `mode`.
    fn plan(&self, mode: &str, params: &[(&str, &str)]) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("hostile-{}", N.fetch_add(1, Ordering::Relaxed));
        let mut all = vec![("mode", mode)];
        all.extend_from_slice(params);
        let action = action_file(self.db.dir.path(), &name, "hostile", "hostile", &all);
        let created = self.json(&["plan", "new", action.to_str().unwrap()]);
        let id = created["plan_id"].as_str().unwrap().to_string();
        self.ok(&["plan", "strategize", &id]);
        id
    }

    /// `plan execute ID`, with its peak RSS checked and printed.
    fn execute(&self, id: &str, label: &str) -> Output {
        self.execute_with(id, label, &[])
    }

    fn execute_with(&self, id: &str, label: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = lockstep_command(&self.db.url, &self.root);
        cmd.args(["plan", "execute", id]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let (out, peak_kib) = output_with_peak_rss(cmd);
        if let Some(kib) = peak_kib {
            println!(
                "peak RSS of `lockstep plan execute` ({label}, {:?}): {} MiB in {:.1} s",
                self.backend,
                kib.div_ceil(1024),
                started.elapsed().as_secs_f64()
            );
            assert!(
                kib < RSS_BOUND_MIB * 1024,
                "{label}: peak RSS {kib} KiB exceeds {RSS_BOUND_MIB} MiB"
            );
        }
        out
    }

    /// Execute `id` expecting exit code 1; returns stderr.
    fn execute_fails(&self, id: &str, label: &str) -> String {
        let out = self.execute(id, label);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{label}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stderr(&out)
    }

    /// Execute `id` expecting success; returns the step summaries.
    fn execute_ok(&self, id: &str, label: &str) -> Vec<String> {
        let out = self.execute(id, label);
        assert!(
            out.status.success(),
            "{label}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        self.summaries(id)
    }

    fn summaries(&self, id: &str) -> Vec<String> {
        self.json(&["plan", "show", id])["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["summary"].as_str().unwrap().to_string())
            .collect()
    }

    fn status(&self, id: &str) -> String {
        let s = &self.json(&["plan", "show", id])["plan"]["status"];
        format!(
            "{}/{}",
            s["phase"].as_str().unwrap(),
            s["state"].as_str().unwrap()
        )
    }

    fn locks(&self) -> String {
        self.ok(&["--json", "locks", "list"]).trim().to_string()
    }

    /// A refused plan is errored, holds nothing, and has nothing to apply.
    fn assert_refused(&self, id: &str) {
        assert_eq!(self.status(id), "execute/errored");
        assert_eq!(self.locks(), "[]", "no lease outlives the call");
        let out = self.lockstep(&["plan", "apply", id]);
        assert_eq!(out.status.code(), Some(4), "nothing to apply");
    }

    /// The host still works: a normal plan runs end to end and applies.
    fn assert_still_works(&self) {
        let act = repo_root().join("examples/actions/replace.toml");
        let out = self.ok(&["plan", "run", act.to_str().unwrap(), "--yes"]);
        assert!(out.contains("applied"), "{out}");
        let greet = std::fs::read_to_string(self.root.join("src/greet.rs")).unwrap();
        assert!(greet.contains("Hi there"), "{greet}");
        assert_eq!(self.locks(), "[]");
    }

    fn file(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

fn contains_once(haystack: &str, needle: &str) {
    assert_eq!(
        haystack.matches(needle).count(),
        1,
        "expected {needle:?} once in:\n{haystack}"
    );
}

// ---- huge outputs -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_changes_hit_the_changeset_cap() {
    let p = Project::new(Backend::Sqlite).await;
    let id = p.plan("many-changes", &[]);
    let err = p.execute_fails(&id, "many-changes: 100 000 writes");
    contains_once(
        &err,
        "changeset refused: it would change more than 50000 files, the most one plan may change; split the action into smaller plans",
    );
    assert!(err.contains("lockstep plan retry"), "{err}");
    p.assert_refused(&id);
    assert!(!p.file("many").exists());
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_file_hits_the_per_file_cap() {
    let p = Project::new(Backend::Sqlite).await;
    let id = p.plan("giant-file", &[]);
    let err = p.execute_fails(&id, "giant-file: one 64 MiB write");
    contains_once(
        &err,
        "change to `giant.bin` refused: 67108864 bytes exceeds the limit of 16777216 bytes per file",
    );
    p.assert_refused(&id);
    assert!(!p.file("giant.bin").exists());
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_past_the_transfer_limit_is_not_copied() {
    let p = Project::new(Backend::Sqlite).await;
    // 150 MiB fits the plugin's 256 MiB of memory but not the host's
    // 128 MiB per crossing: refused before the host copies it.
    let id = p.plan("giant-file", &[("mb", "150")]);
    let err = p.execute_fails(&id, "giant-file: one 150 MiB write");
    contains_once(
        &err,
        "plugin `hostile` handed the host more than 134217728 bytes at once and was stopped",
    );
    p.assert_refused(&id);
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliased_buffers_are_charged_per_copy() {
    let p = Project::new(Backend::Sqlite).await;
    // 1000 writes sharing one 1 MiB buffer: 1 MiB of plugin memory, but
    // 1000 MiB if the host copied every one.
    let id = p.plan("alias", &[("count", "1000"), ("mb", "1")]);
    let err = p.execute_fails(&id, "alias: 1000 writes of one shared 1 MiB buffer");
    contains_once(
        &err,
        "plugin `hostile` handed the host more than 134217728 bytes at once and was stopped",
    );
    p.assert_refused(&id);
    assert!(!p.file("alias").exists());
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_is_a_trap() {
    let p = Project::new(Backend::Sqlite).await;
    let id = p.plan("deep-recursion", &[]);
    let err = p.execute_fails(&id, "deep-recursion");
    contains_once(
        &err,
        "plugin `hostile` trapped: wasm trap: call stack exhausted",
    );
    assert!(err.contains("in plugin `hostile` (hostile.wasm)"), "{err}");
    assert!(err.len() < 8 * 1024, "the backtrace is bounded: {err}");
    p.assert_refused(&id);
    p.assert_still_works();
}

// ---- leases -------------------------------------------------------------

async fn a_lease_flood_is_capped_and_released(backend: Backend) {
    let p = Project::new(backend).await;
    let id = p.plan("lease-flood", &[]);
    let summaries = p.execute_ok(&id, "lease-flood: 100 000 acquires, none dropped");
    assert!(
        summaries[0].starts_with(
            "ok 64 refused 99936 first Some(LockError::Invalid(\"too many leases held at once (at most 64); release one first\"))"
        ),
        "{summaries:?}"
    );
    assert_eq!(p.locks(), "[]", "the host released all 64 leases");
    p.assert_still_works();
}

async fn released_handles_are_capped(backend: Backend) {
    let p = Project::new(backend).await;
    let id = p.plan("handle-flood", &[("count", "1100")]);
    let summaries = p.execute_ok(&id, "handle-flood: 1100 released handles kept");
    assert!(
        summaries[0].starts_with(
            "ok 1024 refused 76 first Some(LockError::Invalid(\"too many lease handles open at once (at most 1024); drop leases you have released\"))"
        ),
        "{summaries:?}"
    );
    assert_eq!(p.locks(), "[]");
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_twice_is_an_invalid_value() {
    let p = Project::new(Backend::Sqlite).await;
    let id = p.plan("double-release", &[]);
    let summaries = p.execute_ok(&id, "double-release");
    let summary = &summaries[0];
    assert!(
        summary.starts_with("first Ok(()) second Err(LockError::Invalid(\"the lease on `project:")
            && summary.ends_with("/res:double` was already released\"))"),
        "{summary}"
    );
    assert_eq!(p.locks(), "[]");
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_cannot_be_renewed() {
    let p = Project::new(Backend::Sqlite).await;
    let id = p.plan("use-after-release", &[]);
    let summaries = p.execute_ok(&id, "use-after-release");
    let summary = &summaries[0];
    let token = summary
        .strip_prefix("token ")
        .and_then(|s| s.split_whitespace().next())
        .unwrap();
    assert!(summary.contains("released Ok(())"), "{summary}");
    assert!(summary.contains("/res:used token-after "), "{summary}");
    assert!(
        summary.contains(&format!(
            "token-after {token} renew Err(LockError::Invalid("
        )),
        "the handle still answers, but renewing is refused: {summary}"
    );
    assert!(summary.ends_with("was already released\"))"), "{summary}");
    assert_eq!(p.locks(), "[]");
    p.assert_still_works();
}

/// Step 1 acquires `kept` and leaks the handle; step 2 takes `marker`,
/// waits, then takes `kept` again. While step 2 waits, `kept` must be free.
async fn a_lease_does_not_outlive_its_call(backend: Backend) {
    let p = Project::new(backend).await;
    let id = p.plan("keep-lease,reacquire", &[("wait_ms", "2000")]);
    let child = lockstep_command(&p.db.url, &p.root)
        .args(["plan", "execute", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let between_steps = loop {
        let locks = p.locks();
        if locks.contains("/res:marker") {
            break locks;
        }
        assert!(Instant::now() < deadline, "step 2 never took `marker`");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !between_steps.contains("/res:kept"),
        "the lease step 1 leaked was released when its call ended: {between_steps}"
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summaries = p.summaries(&id);
    let token = |s: &str, prefix: &str| -> u64 {
        s.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{s}"))
            .parse()
            .unwrap()
    };
    let kept = token(&summaries[0], "kept token ");
    let reacquired = token(&summaries[1], "reacquired token ");
    assert!(
        reacquired > kept,
        "a fresh lease, not the leaked one re-entered: {summaries:?}"
    );
    assert_eq!(p.locks(), "[]");
    p.assert_still_works();
}

// ---- logs ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_capped() {
    let p = Project::new(Backend::Sqlite).await;
    let id = p.plan("huge-log", &[]);
    // At `info` every kept line reaches stderr: 100 000 lines of 1 KiB
    // would be 100 MiB.
    let out = p.execute_with(
        &id,
        "huge-log: 100 000 lines of 1 KiB",
        &[("LOCKSTEP_LOG", "info")],
    );
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "{}",
        &err[err.len().saturating_sub(2000)..]
    );
    assert!(
        out.stderr.len() < 2 << 20,
        "stderr is {} bytes",
        out.stderr.len()
    );
    assert!(
        err.contains("log budget of 1000 lines / 1048576 bytes for this call is spent"),
        "{}",
        &err[err.len().saturating_sub(2000)..]
    );
    assert!(err.contains("99000 log lines of this call were dropped (1000 kept)"));
    assert_eq!(p.summaries(&id), vec!["logged 100000 lines of 1 KiB"]);
    p.assert_still_works();
}

// ---- reads at the cap ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_at_the_cap_and_one_byte_over() {
    let p = Project::new(Backend::Sqlite).await;
    let cap = lockstep::workspace::DEFAULT_READ_CAP as usize;
    std::fs::write(p.file("exact.bin"), vec![b'r'; cap]).unwrap();
    std::fs::write(p.file("over.bin"), vec![b'r'; cap + 1]).unwrap();
    let exact = p.plan("read-file", &[("path", "exact.bin")]);
    assert_eq!(
        p.execute_ok(&exact, "read-file: exactly the cap"),
        vec![format!("read {cap} bytes")]
    );
    let over = p.plan("read-file", &[("path", "over.bin")]);
    assert_eq!(
        p.execute_ok(&over, "read-file: one byte over"),
        vec![format!("error FsError::TooLarge({cap})")]
    );
    p.assert_still_works();
}

// ---- odd paths ----------------------------------------------------------

/// Runs `mode`, which must be refused with `message`; nothing is written.
fn refused_path(p: &Project, mode: &str, message: &str) -> String {
    let id = p.plan(mode, &[]);
    let err = p.execute_fails(&id, mode);
    contains_once(&err, message);
    p.assert_refused(&id);
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_and_overlong_paths_are_refused_clearly() {
    let p = Project::new(Backend::Sqlite).await;
    refused_path(
        &p,
        "write-nul",
        "change to `bad\\u{0}name.txt` refused: `bad\\u{0}name.txt` contains a NUL, backslash or control character",
    );
    let err = refused_path(
        &p,
        "write-long-name",
        "path of 5000 bytes is too long (max 4096, 255 per component)",
    );
    assert!(err.contains("… (5000 bytes)"), "{err}");
    assert!(err.len() < 1024, "the name is not printed in full: {err}");
    let names: Vec<_> = std::fs::read_dir(&p.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("bad") && !n.starts_with("nnn")),
        "{names:?}"
    );
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_spellings_of_one_name_are_refused() {
    let p = Project::new(Backend::Sqlite).await;
    refused_path(
        &p,
        "write-case-collision",
        "change to `a.txt` refused: it and `A.txt` differ only in letter case or Unicode normalisation, so they are one file on macOS and Windows but two on Linux",
    );
    refused_path(
        &p,
        "write-nfc-nfd",
        "change to `cafe\\u{301}.txt` refused: it and `caf\\u{e9}.txt` differ only in letter case or Unicode normalisation",
    );
    assert!(!p.file("A.txt").exists() && !p.file("a.txt").exists());
    assert!(!p.file("caf\u{e9}.txt").exists() && !p.file("cafe\u{301}.txt").exists());
    p.assert_still_works();
}

on_both_backends!(
    a_lease_flood_is_capped_and_released,
    released_handles_are_capped,
    a_lease_does_not_outlive_its_call,
);
