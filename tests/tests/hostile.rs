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
    succeeded,
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
        succeeded(args, &self.lockstep(args))
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

// ---- terminal tricks ----------------------------------------------------

/// What the `escape-sequences` mode puts in every string and in the
/// contents it writes (plugins/rust/hostile: `TRICKS`).
const TRICKS: &str =
    "\u{1b}[1A\u{1b}[2K\u{1b}[32mall good\u{1b}[0m\u{1b}]0;owned\u{7}\rfake\u{202e}txt.exe";

/// How lockstep shows [`TRICKS`].
const TRICKS_SHOWN: &str = "␛[1A␛[2K␛[32mall good␛[0m␛]0;owned␇␍fake\\u{202e}txt.exe";

/// Everything in `bytes` that could rewrite a terminal and is not one of
/// lockstep's own colours (`ESC [` digits and `;` then `m`): other escape
/// sequences, carriage returns, BEL, C1 controls and bidi overrides.
fn foreign_controls(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        let rest = &bytes[i + 1..];
        let bad = match b {
            0x1b => {
                let params = rest
                    .iter()
                    .skip(1)
                    .take_while(|c| c.is_ascii_digit() || **c == b';')
                    .count();
                !(rest.first() == Some(&b'[') && rest.get(1 + params) == Some(&b'm'))
            }
            b'\r' | 0x07 | 0x08 | 0x7f => true,
            // C1 controls (U+0080–U+009F) in UTF-8.
            0xc2 => rest.first().is_some_and(|c| (0x80..=0x9f).contains(c)),
            // U+202A–U+202E and U+2066–U+2069 in UTF-8.
            0xe2 => matches!(rest, [0x80, 0xaa..=0xae, ..] | [0x81, 0xa6..=0xa9, ..]),
            _ => false,
        };
        if bad {
            found.push(String::from_utf8_lossy(&bytes[i..(i + 12).min(bytes.len())]).into_owned());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_from_a_plugin_never_reach_the_terminal() {
    let p = Project::new(Backend::Sqlite).await;
    let action = action_file(
        p.db.dir.path(),
        "tricks",
        "hostile",
        "hostile",
        &[("mode", "escape-sequences")],
    );
    let run = p.lockstep(&["plan", "run", action.to_str().unwrap(), "--yes"]);
    assert!(run.status.success(), "{}\n{}", stdout(&run), stderr(&run));
    let text = stdout(&run);
    let id = text
        .split_whitespace()
        .nth(1)
        .expect("`plan ID created …` comes first")
        .to_string();
    let show = p.lockstep(&["plan", "show", &id, "--diff"]);
    let status = p.lockstep(&["plan", "status", &id]);
    let json = p.lockstep(&["--json", "plan", "show", &id, "--diff"]);
    for (what, out) in [
        ("plan run", &run),
        ("plan show --diff", &show),
        ("plan status", &status),
        ("--json plan show", &json),
    ] {
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let foreign = foreign_controls(bytes);
            assert!(
                foreign.is_empty(),
                "{what} sent {foreign:?} to {stream}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    // Shown, not sent: the proposal, the step title and summary, the
    // progress message, the plugin's log line and the diff line.
    for shown in [
        format!("proposal: proposal {TRICKS_SHOWN}\n"),
        format!("title {TRICKS_SHOWN}\n"),
        format!("summary {TRICKS_SHOWN} (3 changes)\n"),
        format!("+{TRICKS_SHOWN}\n"),
        // Log lines and progress messages are flattened to one line by the
        // plugin log first, which writes Rust escapes (`\u{1b}`, `\r`).
        format!("progress {}", TRICKS.escape_default()),
    ] {
        assert!(text.contains(&shown), "{shown:?} not in:\n{text}");
    }
    assert!(
        stderr(&run).contains(&format!("log {}", TRICKS.escape_default())),
        "{}",
        stderr(&run)
    );
    let diff = stdout(&show);
    assert!(diff.contains(&format!("+{TRICKS_SHOWN}\n")), "{diff}");
    // A change of line endings and trailing whitespace are visible.
    assert!(diff.contains("line endings only: LF → CRLF"), "{diff}");
    assert!(diff.contains("+trailing·␉\n"), "{diff}");
    // The JSON stays exact: it decodes to the plugin's own strings.
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        doc["plan"]["proposal"]["summary"].as_str(),
        Some(format!("proposal {TRICKS}").as_str())
    );
    assert_eq!(
        doc["steps"][0]["summary"].as_str(),
        Some(format!("summary {TRICKS}").as_str())
    );
    // What was reviewed is what was written.
    let readme = std::fs::read_to_string(p.file("README.md")).unwrap();
    assert!(
        readme.ends_with(&format!("harmless\n{TRICKS}\n")),
        "{readme:?}"
    );
    let lib = std::fs::read(p.file("src/lib.rs")).unwrap();
    assert!(lib.windows(2).any(|w| w == b"\r\n"));
}

// ---- project tree: nesting and VCS directories --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changeset_with_a_file_and_its_child_is_refused_before_any_write() {
    let p = Project::new(Backend::Sqlite).await;
    refused_path(
        &p,
        "file-and-child",
        "change to `a/b` refused: the changeset also changes `a`, and one of the two lies inside the other",
    );
    assert!(!p.file("a").exists(), "nothing was written");
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_into_a_nested_git_directory_is_refused() {
    let p = Project::new(Backend::Sqlite).await;
    std::fs::create_dir_all(p.file("vendor/x/.git")).unwrap();
    std::fs::write(p.file("vendor/x/.git/config"), "[core]\n").unwrap();
    refused_path(
        &p,
        "nested-git-write",
        "change to `vendor/x/.git/config` refused: `vendor/x/.git/config` is inside `.git/`, which belongs to the host or to version control",
    );
    assert_eq!(
        std::fs::read_to_string(p.file("vendor/x/.git/config")).unwrap(),
        "[core]\n"
    );
    p.assert_still_works();
}

/// The `replace` example plugin over every file (`globs = "**/*"`) of a
/// project holding vendored repositories: it changes their files, and
/// neither sees nor changes their VCS directories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_git_directories_are_neither_read_nor_written() {
    let p = Project::new(Backend::Sqlite).await;
    let greeting = "Hello, world\n";
    let vcs = [
        "vendor/x/.git/config",
        "vendor/x/.git/hooks/pre-commit",
        "vendor/x/.GIT/description",
        "vendor/y/.hg/hgrc",
        "vendor/z/.svn/entries",
        "vendor/j/.jj/repo/config",
        "nested/.lockstep/config",
    ];
    for path in vcs.iter().chain(&["vendor/x/lib.rs"]) {
        std::fs::create_dir_all(p.file(path).parent().unwrap()).unwrap();
        std::fs::write(p.file(path), greeting).unwrap();
    }
    let action = action_file(
        p.db.dir.path(),
        "replace-everywhere",
        "replace",
        "replace",
        &[
            ("globs", "**/*"),
            ("find", "Hello, world"),
            ("replace", "Hi there, world"),
        ],
    );
    let created = p.json(&["plan", "new", action.to_str().unwrap()]);
    let id = created["plan_id"].as_str().unwrap().to_string();
    p.ok(&["plan", "strategize", &id]);
    let proposal = p.json(&["plan", "show", &id]);
    let targets = proposal.to_string();
    assert!(targets.contains("vendor/x/lib.rs"), "{proposal}");
    for path in vcs {
        assert!(!targets.contains(path), "{path} was proposed: {proposal}");
    }
    let out = p.execute(&id, "replace over **/* with nested VCS directories");
    assert!(out.status.success(), "{}", stderr(&out));
    p.ok(&["plan", "apply", &id]);
    assert_eq!(p.status(&id), "apply/applied");
    assert_eq!(
        std::fs::read_to_string(p.file("vendor/x/lib.rs")).unwrap(),
        "Hi there, world\n"
    );
    for path in vcs {
        assert_eq!(
            std::fs::read_to_string(p.file(path)).unwrap(),
            greeting,
            "{path} was changed"
        );
    }
}

// ---- plugin text, host calls and the operator's policy -------------------

/// Run `lockstep ARGS` on `p` with `env` set, sampling its peak RSS (which
/// must stay under [`RSS_BOUND_MIB`]); returns the output and how long it
/// took.
fn run_measured(
    p: &Project,
    label: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Output, Duration) {
    let mut cmd = lockstep_command(&p.db.url, &p.root);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let (out, peak_kib) = output_with_peak_rss(cmd);
    let elapsed = started.elapsed();
    if let Some(kib) = peak_kib {
        println!(
            "peak RSS of `lockstep {}` ({label}): {} MiB in {:.1} s",
            args.join(" "),
            kib.div_ceil(1024),
            elapsed.as_secs_f64()
        );
        assert!(
            kib < RSS_BOUND_MIB * 1024,
            "{label}: peak RSS {kib} KiB exceeds {RSS_BOUND_MIB} MiB"
        );
    }
    (out, elapsed)
}

/// A policy file `text` beside the database; its path.
fn policy_file(p: &Project, text: &str) -> String {
    let path = p.db.dir.path().join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A new plan of `hostile` in `mode` whose strategize must fail; its stderr.
fn strategize_fails(p: &Project, mode: &str, params: &[(&str, &str)]) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("hostile-text-{}", N.fetch_add(1, Ordering::Relaxed));
    let mut all = vec![("mode", mode)];
    all.extend_from_slice(params);
    let action = action_file(p.db.dir.path(), &name, "hostile", "hostile", &all);
    let id = p.json(&["plan", "new", action.to_str().unwrap()])["plan_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = p.lockstep(&["plan", "strategize", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(p.status(&id), "strategize/errored");
    stderr(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdout_newline_flood_ends_within_the_deadline() {
    let p = Project::new(Backend::Sqlite).await;
    let policy = policy_file(&p, "[limits]\ntimeout_ms = 5000\n");
    let id = p.plan("stdout-newline-flood", &[]);
    let (out, elapsed) = run_measured(
        &p,
        "stdout-newline-flood: one 8 MiB write of newlines",
        &["--policy", &policy, "plan", "execute", &id],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    contains_once(
        &err,
        "plugin `hostile` exceeded the limit `stdio_write_bytes` (65536): one write of 8388608 bytes to stdout exceeds the 65536 bytes `check-write` permitted",
    );
    assert!(
        elapsed < Duration::from_secs(5 + 15),
        "the call ended {elapsed:?} after it started, past its 5 s deadline"
    );
    p.assert_refused(&id);
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigtermed_plan_run_exits_promptly_during_a_stdout_flood() {
    let p = Project::new(Backend::Sqlite).await;
    // Permitted writes without end: the call runs until its deadline (a
    // minute) unless something stops it.
    let policy = policy_file(
        &p,
        "[limits]\ntimeout_ms = 60000\n[defaults]\ntimeout_ms = 60000\n",
    );
    let action = action_file(
        p.db.dir.path(),
        "flood-run",
        "hostile",
        "hostile",
        &[
            ("mode", "stdout-newline-flood"),
            ("mb", "1000000"),
            ("chunked", "true"),
        ],
    );
    let mut child = lockstep_command(&p.db.url, &p.root)
        .args([
            "--policy",
            &policy,
            "plan",
            "run",
            action.to_str().unwrap(),
            "--yes",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.locks().contains("\"plan:") {
        assert!(
            Instant::now() < deadline,
            "the plan never started executing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "`lockstep plan run` ignored SIGTERM for 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(p.locks(), "[]", "the session released its locks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_control_characters_are_charged_before_escaping() {
    let p = Project::new(Backend::Sqlite).await;
    // 100 MiB of `\x01`: escaped in full it would be 600 MiB.
    let id = p.plan("log-control-flood", &[("mb", "100")]);
    let (out, _) = run_measured(
        &p,
        "log-control-flood: one 100 MiB line of \\x01",
        &["plan", "execute", &id],
        &[("LOCKSTEP_LOG", "info")],
    );
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "{}",
        &err[err.len().saturating_sub(2000)..]
    );
    assert!(
        err.contains(&format!(
            " … [{} more bytes cut: lines are kept up to 16384 bytes]",
            (100 << 20) - 16384
        )),
        "{}",
        &err[err.len().saturating_sub(2000)..]
    );
    assert!(
        out.stderr.len() < 1 << 20,
        "stderr is {} bytes",
        out.stderr.len()
    );
    assert_eq!(
        p.summaries(&id),
        vec!["logged one line of 100 MiB of \\x01"]
    );
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_over_the_cap_are_refused() {
    let p = Project::new(Backend::Sqlite).await;
    // 10 000 steps, each answering with a 1 MiB summary: refused at the
    // first, nothing stored.
    let id = p.plan("huge-summaries", &[]);
    let err = p.execute_fails(&id, "huge-summaries: 10 000 steps of 1 MiB summaries");
    contains_once(
        &err,
        "plugin `hostile` exceeded the limit `summary_bytes` (4096): the step's summary is 1048576 bytes; return less, or ask the operator to raise `summary_bytes` in the policy (lockstep.toml)",
    );
    p.assert_refused(&id);
    // Just under and just over the cap.
    let at = p.plan("huge-summaries", &[("steps", "2"), ("bytes", "4096")]);
    let summaries = p.execute_ok(&at, "huge-summaries: 2 steps at the cap");
    assert_eq!(summaries.len(), 2);
    assert!(summaries.iter().all(|s| s.len() == 4096));
    let over = p.plan("huge-summaries", &[("steps", "2"), ("bytes", "4097")]);
    let err = p.execute_fails(&over, "huge-summaries: one byte over the cap");
    contains_once(&err, "the step's summary is 4097 bytes");
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn titles_over_the_cap_are_refused() {
    let p = Project::new(Backend::Sqlite).await;
    let err = strategize_fails(&p, "huge-title", &[]);
    contains_once(
        &err,
        "plugin `hostile` exceeded the limit `title_bytes` (1024): the title of step 1 is 1048576 bytes",
    );
    let err = strategize_fails(&p, "huge-title", &[("bytes", "1025")]);
    contains_once(&err, "the title of step 1 is 1025 bytes");
    let at = p.plan("huge-title", &[("bytes", "1024")]);
    let steps = p.json(&["plan", "show", &at])["plan"]["proposal"]["steps"].clone();
    assert_eq!(
        steps[0]["title"].as_str().map(str::len),
        Some(1024),
        "{steps}"
    );
    // Steps per proposal: a policy lowering `steps` refuses 10 000.
    let policy = policy_file(&p, "[limits]\nsteps = 100\n");
    let action = action_file(
        p.db.dir.path(),
        "many-steps",
        "hostile",
        "hostile",
        &[("mode", "huge-summaries")],
    );
    let id = p.json(&["plan", "new", action.to_str().unwrap()])["plan_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = p.lockstep(&["--policy", &policy, "plan", "strategize", &id]);
    contains_once(
        &stderr(&out),
        "plugin `hostile` exceeded the limit `steps` (100): the proposal has 10000 steps",
    );
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_per_call_are_bounded() {
    let p = Project::new(Backend::Sqlite).await;
    let at = p.plan("random-bytes-flood", &[("bytes", "1048576")]);
    assert_eq!(
        p.execute_ok(&at, "random-bytes-flood: 1 MiB, the cap"),
        vec!["got 1048576 random bytes"]
    );
    let over = p.plan("random-bytes-flood", &[]);
    let err = p.execute_fails(&over, "random-bytes-flood: 64 MiB in one call");
    contains_once(
        &err,
        "plugin `hostile` exceeded the limit `random_bytes` (1048576): one `get-random-bytes` call asked for more than 1048576 bytes",
    );
    p.assert_refused(&over);
    p.assert_still_works();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_table_is_bounded() {
    let p = Project::new(Backend::Sqlite).await;
    let id = p.plan("resource-table-flood", &[]);
    let err = p.execute_fails(&id, "resource-table-flood: a million stdout handles");
    contains_once(
        &err,
        "plugin `hostile` exceeded the limit `resource_handles` (1024): the plugin held more WASI handles",
    );
    p.assert_refused(&id);
    let few = p.plan("resource-table-flood", &[("count", "1000")]);
    assert_eq!(
        p.execute_ok(&few, "resource-table-flood: 1000 handles"),
        vec!["held 1000 stdout handles"]
    );
    p.assert_still_works();
}

/// A copy of `hostile` whose manifest asks for `limits`, in a plugin
/// directory ahead of the others; the `LOCKSTEP_PLUGIN_PATH` to use.
fn greedy_hostile(p: &Project, limits: &str) -> String {
    let dir = p.db.dir.path().join("greedy-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let dist = lockstep_tests::process::plugins_dist();
    std::fs::copy(dist.join("hostile.wasm"), dir.join("hostile.wasm")).unwrap();
    let manifest = std::fs::read_to_string(dist.join("hostile.toml")).unwrap();
    std::fs::write(
        dir.join("hostile.toml"),
        format!("{manifest}\n[limits]\n{limits}\n"),
    )
    .unwrap();
    format!("{}:{}", dir.display(), dist.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_cannot_raise_its_limits_above_the_policy() {
    let p = Project::new(Backend::Sqlite).await;
    let path = greedy_hostile(&p, "timeout_ms = 300000\nmemory_mb = 4096");
    let policy = policy_file(&p, "[limits]\ntimeout_ms = 1500\nmemory_mb = 128\n");
    let run = |args: &[&str]| {
        let mut cmd = lockstep_command(&p.db.url, &p.root);
        cmd.env("LOCKSTEP_PLUGIN_PATH", &path)
            .arg("--policy")
            .arg(&policy)
            .args(args);
        cmd.output().unwrap()
    };
    let out = run(&["plugins", "inspect", "hostile"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains(
            "timeout_ms        300000 requested → 1500 (clamped by the policy's ceiling 1500)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "memory_mb         4096 requested → 128 (clamped by the policy's ceiling 128)"
        ),
        "{text}"
    );
    // The loop is killed at the policy's deadline, not the manifest's.
    let id = p.plan("loop", &[]);
    let started = Instant::now();
    let out = run(&["plan", "execute", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    contains_once(
        &stderr(&out),
        "plugin `hostile` was killed after its deadline of 1500 ms",
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    p.assert_refused(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_outside_the_allow_list_is_refused() {
    let p = Project::new(Backend::Sqlite).await;
    // The policy file in the user's config directory is read by default.
    let config = p.db.dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("lockstep.toml"),
        "[plugins]\nallow = [\"replace\", \"license-header\"]\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let action = action_file(
        p.db.dir.path(),
        "not-allowed",
        "hostile",
        "hostile",
        &[("mode", "count")],
    );
    let run = |args: &[&str]| {
        lockstep_command(&p.db.url, &p.root)
            .env("LOCKSTEP_CONFIG_DIR", config)
            .args(args)
            .output()
            .unwrap()
    };
    let refusal = format!(
        "plugin `hostile` is not allowed by the operator's policy ({config}/lockstep.toml), which allows only: replace, license-header"
    );
    // Refused when the plan is created…
    let out = run(&["plan", "new", action.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    contains_once(&stderr(&out), &refusal);
    // …and when a plan created before the policy runs.
    let id = p.json(&["plan", "new", action.to_str().unwrap()])["plan_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run(&["plan", "strategize", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    contains_once(&stderr(&out), &refusal);
    assert_eq!(p.status(&id), "strategize/errored");
    let list = stdout(&run(&["plugins", "list"]));
    assert!(
        list.contains("problem: plugin `hostile` is not allowed"),
        "{list}"
    );
    // An allowed plugin still runs under the same policy.
    let act = repo_root().join("examples/actions/replace.toml");
    let out = run(&["plan", "run", act.to_str().unwrap(), "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_policy_file_is_a_clear_error() {
    let p = Project::new(Backend::Sqlite).await;
    let policy = policy_file(&p, "[limits]\ntimeout_ms = 5000\nmemroy_mb = 64\n");
    let out = p.lockstep(&["--policy", &policy, "plan", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{policy}:3:1: unknown field `memroy_mb`")),
        "{err}"
    );
    assert!(err.contains("3 | memroy_mb = 64"), "{err}");
    let missing = p.lockstep(&["--policy", "/nonexistent/lockstep.toml", "plan", "list"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("cannot read the policy file /nonexistent/lockstep.toml"),
        "{}",
        stderr(&missing)
    );
}
