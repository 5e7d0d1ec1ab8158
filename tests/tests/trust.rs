//! The checkout is not trusted: the real `lockstep` binary on a project
//! that ships compiled artifacts and plugins of its own in `.lockstep/`.
//!
//! - A compiled artifact planted in the checkout (where the cache used to
//!   be) or in the user's cache without the user's tag is never run.
//! - A project's own plugins run only once the user trusts them, and again
//!   only after the user trusts them anew when they change.
//! - `lockstep init` keeps the local state out of version control.
//!
//! Each test has its own user cache and config directories
//! (`LOCKSTEP_CACHE_DIR`, `LOCKSTEP_CONFIG_DIR`), so the tests run in
//! parallel and never touch the real ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lockstep_tests::process::{
    action_file, copy_dir, lockstep_command, plugins_dist, repo_root, stderr, stdout, succeeded,
};
use lockstep_tests::{Backend, TestDb};

/// A copy of the sample project with a database and user directories of
/// its own.
struct Project {
    db: TestDb,
    root: PathBuf,
    user: tempfile::TempDir,
}

impl Project {
    async fn new() -> Project {
        let db = TestDb::new(Backend::Sqlite).await;
        let root = db.dir.path().join("sample-project");
        copy_dir(&repo_root().join("examples/sample-project"), &root);
        let root = std::fs::canonicalize(root).unwrap();
        let project = Project {
            db,
            root,
            user: tempfile::tempdir().unwrap(),
        };
        project.ok(&["init"]);
        project
    }

    fn cache_dir(&self) -> PathBuf {
        self.user.path().join("cache")
    }

    fn command(&self) -> Command {
        let mut cmd = lockstep_command(&self.db.url, &self.root);
        cmd.env("LOCKSTEP_CACHE_DIR", self.cache_dir())
            .env("LOCKSTEP_CONFIG_DIR", self.user.path().join("config"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        succeeded(args, &self.run(args))
    }

    /// Create a plan of `plugin` (as strategy and executor) and strategize
    /// it: the output of the first command that fails, or of strategize.
    fn strategize(&self, plugin: &str) -> Output {
        let action = action_file(self.db.dir.path(), plugin, plugin, plugin, &[]);
        let out = self.run(&["--json", "plan", "new", action.to_str().unwrap()]);
        if !out.status.success() {
            return out;
        }
        let created: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        let id = created["plan_id"].as_str().unwrap().to_string();
        self.run(&["plan", "strategize", &id])
    }

    /// The error `strategize` reports (on stderr, or as JSON on stdout).
    fn refused(&self, plugin: &str) -> String {
        let out = self.strategize(plugin);
        assert!(!out.status.success(), "`{plugin}` was not refused");
        format!("{}{}", stdout(&out), stderr(&out))
    }

    /// Put the `noop` component in the project's own plugin directory as
    /// the plugin `name`.
    fn local_plugin(&self, name: &str) {
        let dir = self.root.join(".lockstep/plugins");
        std::fs::copy(
            plugins_dist().join("noop.wasm"),
            dir.join(format!("{name}.wasm")),
        )
        .unwrap();
        let manifest = std::fs::read_to_string(plugins_dist().join("noop.toml"))
            .unwrap()
            .replace("name = \"noop\"", &format!("name = \"{name}\""));
        std::fs::write(dir.join(format!("{name}.toml")), manifest).unwrap();
    }
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_string()
}

/// The old cache format's checksum file: magic, length, CRC-32 (anyone
/// can compute it).
fn crc_sum(bytes: &[u8]) -> Vec<u8> {
    // CRC-32 (IEEE), bit by bit: small and slow is fine for one file.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut sum = b"LKSTCRC1".to_vec();
    sum.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    sum.extend_from_slice(&(!crc).to_le_bytes());
    sum
}

#[tokio::test]
async fn a_planted_artifact_in_the_checkout_is_never_run() {
    let project = Project::new().await;
    // The attacker compiles `noop` with the same lockstep, in a cache of
    // their own, to learn the engine key and get a real artifact.
    let theirs = tempfile::tempdir().unwrap();
    let plugins = theirs.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for file in ["noop.wasm", "noop.toml"] {
        std::fs::copy(plugins_dist().join(file), plugins.join(file)).unwrap();
    }
    let out = project
        .command()
        .env_remove("LOCKSTEP_PLUGIN_PATH")
        .env("LOCKSTEP_CACHE_DIR", theirs.path().join("cache"))
        .args([
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "plugins",
            "precompile",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let noop_sum = sha256_hex(&plugins.join("noop.wasm"));
    let header_sum = sha256_hex(&plugins_dist().join("license-header.wasm"));
    let engine_dir = std::fs::read_dir(theirs.path().join("cache"))
        .unwrap()
        .flatten()
        .find(|e| e.path().join(format!("{noop_sum}.cwasm")).is_file())
        .expect("the precompiled noop artifact")
        .path();
    let engine_key = engine_dir.file_name().unwrap().to_owned();
    let noop_artifact = std::fs::read(engine_dir.join(format!("{noop_sum}.cwasm"))).unwrap();
    let noop_tag = std::fs::read(engine_dir.join(format!("{noop_sum}.tag"))).ok();

    // Planted under license-header's hash: in the checkout's .lockstep/cache
    // (where the cache used to be, with the checksum it used to check) and
    // in the user's cache itself (with a tag made under another key).
    for (dir, tag) in [
        (project.root.join(".lockstep/cache"), None),
        (project.cache_dir(), noop_tag.as_ref()),
    ] {
        let dir = dir.join(&engine_key);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{header_sum}.cwasm")), &noop_artifact).unwrap();
        std::fs::write(
            dir.join(format!("{header_sum}.sum")),
            crc_sum(&noop_artifact),
        )
        .unwrap();
        if let Some(tag) = tag {
            std::fs::write(dir.join(format!("{header_sum}.tag")), tag).unwrap();
        }
    }

    let action = repo_root().join("examples/actions/license-header.toml");
    let out = project.run(&["plan", "run", action.to_str().unwrap(), "--yes"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    // License-header did license-header's work, not noop's.
    let main = std::fs::read_to_string(project.root.join("src/main.rs")).unwrap();
    assert!(
        main.starts_with("// SPDX-License-Identifier: Apache-2.0"),
        "{main}"
    );
    assert!(
        stderr(&out).contains("not written by your lockstep"),
        "the planted artifact was reported: {}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_cache_dir_open_to_others_is_not_used_and_says_why() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new().await;
    let cache = project.cache_dir();
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let action = repo_root().join("examples/actions/license-header.toml");
    let out = project.run(&["plan", "run", action.to_str().unwrap(), "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.matches("not using the compiled-component cache")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("0777") && err.contains("chmod 700"), "{err}");
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        0,
        "nothing is written there"
    );
}

#[tokio::test]
async fn an_untrusted_projects_plugins_are_refused_with_how_to_trust() {
    let project = Project::new().await;
    project.local_plugin("local-noop");
    let err = project.refused("local-noop");
    let root = project.root.display().to_string();
    assert!(err.contains("plugin `local-noop`"), "{err}");
    assert!(err.contains(&format!("lockstep trust {root}")), "{err}");
    // `plugins list` says the same, without running anything.
    let list = project.ok(&["plugins", "list"]);
    assert!(list.contains("you have not trusted this project"), "{list}");

    // Operator-named directories are not affected.
    assert!(project.strategize("noop").status.success());

    let trusted = project.ok(&["trust", &root]);
    assert!(trusted.contains("local-noop.wasm"), "{trusted}");
    let out = project.strategize("local-noop");
    assert!(out.status.success(), "{}", stderr(&out));
    let list = project.ok(&["trust", "--list"]);
    assert!(list.contains(&root), "{list}");

    project.ok(&["untrust", &root]);
    project.refused("local-noop");
    // Nothing was written to the trust records of the tests' shared
    // config directory or the real one: only to this test's own.
    assert!(project.user.path().join("config/trusted.toml").is_file());
}

#[tokio::test]
async fn a_trusted_project_whose_plugin_changed_is_refused_again() {
    let project = Project::new().await;
    project.local_plugin("local-noop");
    let root = project.root.display().to_string();
    project.ok(&["trust", &root]);
    assert!(project.strategize("local-noop").status.success());

    // Edited: the manifest gains a line.
    let manifest = project.root.join(".lockstep/plugins/local-noop.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("# edited after it was trusted\n");
    std::fs::write(&manifest, text).unwrap();
    let err = project.refused("local-noop");
    assert!(
        err.contains("plugin `local-noop`") && err.contains("changed since you trusted"),
        "{err}"
    );
    assert!(err.contains(&format!("lockstep trust {root}")), "{err}");

    // Edited: the component replaced by another one.
    project.ok(&["trust", &root]);
    assert!(project.strategize("local-noop").status.success());
    std::fs::copy(
        plugins_dist().join("license-header.wasm"),
        project.root.join(".lockstep/plugins/local-noop.wasm"),
    )
    .unwrap();
    let err = project.refused("local-noop");
    assert!(err.contains("local-noop.wasm changed since"), "{err}");

    // Added: a plugin that was not there when the project was trusted.
    project.ok(&["trust", &root]);
    project.local_plugin("local-two");
    let err = project.refused("local-two");
    assert!(
        err.contains("plugin `local-two`") && err.contains("was added since you trusted"),
        "{err}"
    );
    project.ok(&["trust", &root]);
    assert!(project.strategize("local-two").status.success());
}

#[tokio::test]
async fn init_writes_a_gitignore() {
    let project = Project::new().await;
    let ignore = project.root.join(".lockstep/.gitignore");
    let text = std::fs::read_to_string(&ignore).expect("init writes .lockstep/.gitignore");
    // A .gitignore the user changed is kept.
    std::fs::write(&ignore, format!("{text}# mine\n")).unwrap();
    project.ok(&["init"]);
    assert!(std::fs::read_to_string(&ignore)
        .unwrap()
        .ends_with("# mine\n"));

    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&project.root)
            .output()
    };
    let Ok(init) = git(&["init", "-q"]) else {
        eprintln!("git is not installed: the patterns are not checked with git");
        return;
    };
    assert!(init.status.success());
    let ignored = |path: &str| {
        git(&["check-ignore", "-q", "--no-index", path])
            .unwrap()
            .status
            .success()
    };
    for local in [
        ".lockstep/lockstep.db",
        ".lockstep/lockstep.db-wal",
        ".lockstep/lockstep.db-shm",
        ".lockstep/journal/x",
        ".lockstep/cache/k/a.cwasm",
    ] {
        assert!(ignored(local), "{local} is ignored");
    }
    for kept in [
        ".lockstep/.gitignore",
        ".lockstep/plugins/p.wasm",
        ".lockstep/plugins/p.toml",
    ] {
        assert!(!ignored(kept), "{kept} is not ignored");
    }
}
