//! Project trust: a project's own plugins (`<project>/.lockstep/plugins`)
//! come with the checkout, which anyone may have written, so they run only
//! once the user has said so — like `direnv allow` or `mise trust`.
//!
//! `lockstep trust [DIR]` records the project's canonical path and the
//! SHA-256 of every plugin file there (`*.wasm` and `*.toml`) in
//! `trusted.toml` in the user's config directory ([`super::userdir`]),
//! written atomically with mode `0600` under an advisory lock. Before a
//! plugin from that directory is loaded, its component and manifest must
//! hash to what was recorded: a plugin added or edited since is refused
//! again, with the command that trusts it. The hash checked is the one the
//! component is then loaded by (see `ComponentCache::load_or_compile`), so
//! a file swapped in between is not run either.
//!
//! Directories the operator names (`--plugin-dir`, `LOCKSTEP_PLUGIN_PATH`,
//! an embedder's `Config::plugin_dirs`) are the operator's decision and
//! are not checked here.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::userdir::{self, UserDirError};

/// The file in the user's config directory that records trusted projects.
pub const TRUST_FILE: &str = "trusted.toml";

/// `<project>/.lockstep/plugins`: the plugin directory a checkout brings.
pub fn project_plugin_dir(project: &Path) -> PathBuf {
    project.join(".lockstep").join("plugins")
}

/// One trusted project as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedProject {
    /// The project's canonical path.
    pub path: PathBuf,
    /// When the user trusted it (RFC 3339, UTC).
    pub trusted_at: String,
    /// SHA-256 of each plugin file in `.lockstep/plugins`, by file name.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TrustFile {
    #[serde(default, rename = "project")]
    projects: Vec<TrustedProject>,
}

/// How a plugin file differs from what the user trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The file was not there when the project was trusted.
    Added,
    /// The file's contents changed.
    Edited,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Added => "was added",
            Change::Edited => "changed",
        })
    }
}

/// Why a project's plugin may not run, or trust cannot be recorded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The project was never trusted.
    #[error(
        "plugin `{plugin}` is in {dir}, which came with the project {project}; a project's own plugins \
         run only after you trust them, and you have not trusted this project. Review the plugins there, \
         then run `lockstep trust {project}` (or put the plugin in a directory you name with --plugin-dir \
         or LOCKSTEP_PLUGIN_PATH)"
    )]
    NotTrusted {
        /// The plugin's name.
        plugin: String,
        /// The project (canonical path).
        project: PathBuf,
        /// Its plugin directory.
        dir: PathBuf,
    },
    /// A plugin file was added or edited after the project was trusted.
    #[error(
        "plugin `{plugin}` is not run: {file} {change} since you trusted {project} ({trusted_at}). \
         Review it, then run `lockstep trust {project}` again"
    )]
    Changed {
        /// The plugin's name.
        plugin: String,
        /// The project (canonical path).
        project: PathBuf,
        /// The file that differs.
        file: PathBuf,
        /// How it differs.
        change: Change,
        /// When the project was trusted.
        trusted_at: String,
    },
    /// There is no user config directory to record trust in.
    #[error(
        "no user config directory to record trusted projects in: set {} (or HOME)",
        userdir::CONFIG_DIR_ENV
    )]
    NoConfigDir,
    /// The config directory or trust file is not safely the user's.
    #[error("{source}; fix its owner and mode (`chmod 700` for the directory, `chmod 600` for {TRUST_FILE})")]
    Unsafe {
        /// What is wrong.
        #[source]
        source: UserDirError,
    },
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The trust file is not valid TOML of the expected shape.
    #[error("{path} is not a valid trust file: {source}; fix it or remove it (then trust your projects again)")]
    Parse {
        /// The trust file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: toml::de::Error,
    },
    /// The trust records could not be written out.
    #[error("cannot write the trust records: {0}")]
    Serialize(#[from] toml::ser::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl From<UserDirError> for TrustError {
    fn from(source: UserDirError) -> Self {
        TrustError::Unsafe { source }
    }
}

/// Size, modification time, change time and inode of a file: the change
/// time cannot be set by an ordinary user, so an unchanged stamp means
/// unchanged contents.
type Stamp = (u64, i64, i64, i64, i64, u64);

fn file_stamp(meta: &std::fs::Metadata) -> Stamp {
    (
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino(),
    )
}

/// The user's trust records, and the SHA-256 of plugin files already
/// hashed by this process.
#[derive(Debug, Default)]
pub struct TrustStore {
    dir: Option<PathBuf>,
    hashed: Mutex<HashMap<PathBuf, (Stamp, String)>>,
}

impl TrustStore {
    /// Records kept in `dir` (the user's config directory); `None` trusts
    /// no project.
    pub fn new(dir: Option<PathBuf>) -> TrustStore {
        TrustStore {
            dir,
            hashed: Mutex::default(),
        }
    }

    /// The trust file, if there is a config directory.
    pub fn file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(TRUST_FILE))
    }

    fn read(&self) -> Result<TrustFile, TrustError> {
        let Some(path) = self.file() else {
            return Ok(TrustFile::default());
        };
        let text = match std::fs::File::open(&path) {
            Ok(file) => {
                let meta = file.metadata().map_err(io(&path))?;
                userdir::check_owned_closed(&path, &meta)?;
                let mut text = String::new();
                file.take(16 << 20)
                    .read_to_string(&mut text)
                    .map_err(io(&path))?;
                text
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TrustFile::default()),
            Err(e) => return Err(io(&path)(e)),
        };
        toml::from_str(&text).map_err(|source| TrustError::Parse { path, source })
    }

    /// Every trusted project.
    pub fn list(&self) -> Result<Vec<TrustedProject>, TrustError> {
        Ok(self.read()?.projects)
    }

    /// Read, change and write the records under an exclusive lock.
    fn update<T>(&self, f: impl FnOnce(&mut TrustFile) -> T) -> Result<T, TrustError> {
        let dir = self.dir.as_ref().ok_or(TrustError::NoConfigDir)?;
        userdir::ensure_private_dir(dir, true)?;
        let lock_path = dir.join(format!("{TRUST_FILE}.lock"));
        let lock = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::File::options()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&lock_path)
                .map_err(io(&lock_path))?
        };
        lock.lock().map_err(io(&lock_path))?;
        let mut records = self.read()?;
        let result = f(&mut records);
        let text = toml::to_string_pretty(&records)?;
        let path = dir.join(TRUST_FILE);
        userdir::write_private_file(&path, text.as_bytes()).map_err(io(&path))?;
        Ok(result)
    }

    /// Trust `project` with the plugin files it has now; returns the record.
    pub fn trust(&self, project: &Path) -> Result<TrustedProject, TrustError> {
        let path = std::fs::canonicalize(project).map_err(io(project))?;
        let dir = project_plugin_dir(&path);
        let mut files = BTreeMap::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(io(&dir))?;
                    let file = entry.path();
                    let plugin_file = file.extension().is_some_and(|x| x == "wasm" || x == "toml");
                    if plugin_file && file.is_file() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        files.insert(name, self.sha256(&file)?);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&dir)(e)),
        }
        let record = TrustedProject {
            path,
            trusted_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            files,
        };
        let kept = record.clone();
        self.update(move |records| {
            records.projects.retain(|p| p.path != record.path);
            records.projects.push(record);
            records.projects.sort_by(|a, b| a.path.cmp(&b.path));
        })?;
        Ok(kept)
    }

    /// Forget `project`; returns the record it had, if any.
    pub fn untrust(&self, project: &Path) -> Result<Option<TrustedProject>, TrustError> {
        let path = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_path_buf());
        self.update(|records| {
            let found = records.projects.iter().position(|p| p.path == path);
            found.map(|i| records.projects.remove(i))
        })
    }

    /// Whether the plugin `plugin` — the component `wasm` and its manifest
    /// in `<project>/.lockstep/plugins` — is what the user trusted; returns
    /// the component's SHA-256, which it must then be loaded by.
    pub fn check(
        &self,
        project: &Path,
        plugin: &str,
        wasm: &Path,
        manifest: &Path,
    ) -> Result<String, TrustError> {
        let canonical = std::fs::canonicalize(project).map_err(io(project))?;
        let records = self.read()?;
        let record = records
            .projects
            .iter()
            .find(|p| p.path == canonical)
            .ok_or_else(|| TrustError::NotTrusted {
                plugin: plugin.to_string(),
                dir: project_plugin_dir(&canonical),
                project: canonical.clone(),
            })?;
        let mut wasm_hash = String::new();
        for file in [wasm, manifest] {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let actual = self.sha256(file)?;
            let change = match record.files.get(&name) {
                None => Some(Change::Added),
                Some(recorded) if *recorded != actual => Some(Change::Edited),
                Some(_) => None,
            };
            if let Some(change) = change {
                return Err(TrustError::Changed {
                    plugin: plugin.to_string(),
                    project: canonical,
                    file: file.to_path_buf(),
                    change,
                    trusted_at: record.trusted_at.clone(),
                });
            }
            if file == wasm {
                wasm_hash = actual;
            }
        }
        Ok(wasm_hash)
    }

    /// The SHA-256 of a file, remembered while its stamp is unchanged.
    fn sha256(&self, path: &Path) -> Result<String, TrustError> {
        let mut file = std::fs::File::open(path).map_err(io(path))?;
        let stamp = file_stamp(&file.metadata().map_err(io(path))?);
        if let Some((seen, hash)) = self
            .hashed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            if *seen == stamp {
                return Ok(hash.clone());
            }
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = file.read(&mut buf).map_err(io(path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let hash = hex::encode(hasher.finalize());
        self.hashed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), (stamp, hash.clone()));
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn plugin(project: &Path, name: &str, body: &str) {
        let dir = project_plugin_dir(project);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.wasm")), body).unwrap();
        std::fs::write(
            dir.join(format!("{name}.toml")),
            format!("name = \"{name}\""),
        )
        .unwrap();
    }

    fn check(store: &TrustStore, project: &Path, name: &str) -> Result<String, TrustError> {
        let dir = project_plugin_dir(project);
        store.check(
            project,
            name,
            &dir.join(format!("{name}.wasm")),
            &dir.join(format!("{name}.toml")),
        )
    }

    #[test]
    fn trust_records_hashes_and_refuses_what_changed() {
        let config = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let store = TrustStore::new(Some(config.path().join("lockstep")));
        plugin(project.path(), "a", "one");
        let err = check(&store, project.path(), "a").unwrap_err();
        assert!(matches!(err, TrustError::NotTrusted { .. }), "{err}");
        assert!(err.to_string().contains("lockstep trust"), "{err}");

        let record = store.trust(project.path()).unwrap();
        assert_eq!(record.files.len(), 2);
        assert_eq!(
            check(&store, project.path(), "a").unwrap(),
            hex::encode(Sha256::digest(b"one"))
        );
        let file = config.path().join("lockstep").join(TRUST_FILE);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);

        plugin(project.path(), "b", "two");
        let err = check(&store, project.path(), "b").unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::Changed {
                    change: Change::Added,
                    ..
                }
            ),
            "{err}"
        );
        std::fs::write(
            project_plugin_dir(project.path()).join("a.toml"),
            "name = \"x\"",
        )
        .unwrap();
        let err = check(&store, project.path(), "a").unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::Changed {
                    change: Change::Edited,
                    ..
                }
            ),
            "{err}"
        );

        store.trust(project.path()).unwrap();
        check(&store, project.path(), "a").unwrap();
        check(&store, project.path(), "b").unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(store.untrust(project.path()).unwrap().is_some());
        assert!(check(&store, project.path(), "a").is_err());
        assert!(store.list().unwrap().is_empty());

        // A trust file others may write is not believed.
        store.trust(project.path()).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = check(&store, project.path(), "a").unwrap_err();
        assert!(matches!(err, TrustError::Unsafe { .. }), "{err}");
        // No config directory: nothing is trusted.
        let none = TrustStore::new(None);
        assert!(matches!(
            check(&none, project.path(), "a"),
            Err(TrustError::NotTrusted { .. })
        ));
        assert!(matches!(
            none.trust(project.path()),
            Err(TrustError::NoConfigDir)
        ));
    }
}
