//! Writing a changeset to the project: all-or-nothing from the user's point
//! of view. A drift check comes first (nothing is written if any target
//! changed since Execute read it); the lifecycle journals the intent in the
//! database; then each file is written to a temp file beside its target,
//! fsynced and renamed over it. An apply interrupted part-way is completed
//! by [`roll_forward`], which is idempotent.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::changeset::{content_hash, file_hash, validate_path, ChangeError};
use crate::store::{ChangeKind, ChangeRecord};

/// Environment variable for fault-injection tests: abort the process after
/// this many files of an apply were written (simulates a crash).
pub const FAULT_STOP_AFTER_ENV: &str = "LOCKSTEP_FAULT_APPLY_STOP_AFTER";
/// Environment variable for fault-injection tests: sleep this many
/// milliseconds before each file of an apply (widens the crash window).
pub const FAULT_DELAY_ENV: &str = "LOCKSTEP_FAULT_APPLY_DELAY_MS";

/// A target that changed since Execute read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Drift {
    /// Project-relative path.
    pub path: String,
    /// Hash recorded at Execute (`None` = absent).
    pub expected: Option<String>,
    /// Hash now (`None` = absent).
    pub found: Option<String>,
}

/// Why an apply did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Targets changed underneath; nothing was written.
    #[error("{} file(s) changed since the plan was executed; nothing was written: {}", .0.len(), .0.iter().map(|d| d.path.as_str()).collect::<Vec<_>>().join(", "))]
    Drift(Vec<Drift>),
    /// A path is no longer safe (e.g. a symlink appeared); nothing was written.
    #[error("{0}")]
    Path(#[from] ChangeError),
    /// Writing failed part-way; the journal lets the next command finish it.
    #[error("writing `{path}` failed: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Check every change's path and recorded hash against the disk.
pub fn check(root: &Path, changes: &[ChangeRecord]) -> Result<(), ApplyError> {
    let mut drift = Vec::new();
    for c in changes {
        validate_path(root, &c.path)?;
        let found = file_hash(&root.join(&c.path)).map_err(|source| ApplyError::Io {
            path: c.path.clone(),
            source,
        })?;
        if found != c.base_hash {
            drift.push(Drift {
                path: c.path.clone(),
                expected: c.base_hash.clone(),
                found,
            });
        }
    }
    if drift.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Drift(drift))
    }
}

/// Write every change. Files that already hold their new contents are
/// skipped, so this both applies and rolls forward.
pub fn write_all(root: &Path, changes: &[ChangeRecord]) -> Result<usize, ApplyError> {
    let stop_after: Option<usize> = std::env::var(FAULT_STOP_AFTER_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let delay: Option<u64> = std::env::var(FAULT_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let mut written = 0;
    for c in changes {
        if let Some(ms) = delay {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let target = root.join(&c.path);
        let io = |source| ApplyError::Io {
            path: c.path.clone(),
            source,
        };
        match c.kind {
            ChangeKind::Write => {
                let contents = c.contents.as_deref().unwrap_or_default();
                let current = file_hash(&target).map_err(io)?;
                if current.as_deref() == Some(content_hash(contents).as_str()) {
                    cleanup_temp(&target);
                    continue;
                }
                write_atomic(&target, contents).map_err(io)?;
            }
            ChangeKind::Delete => match std::fs::remove_file(&target) {
                Ok(()) => sync_parent(&target).map_err(io)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            },
        }
        written += 1;
        if stop_after == Some(written) {
            eprintln!("{FAULT_STOP_AFTER_ENV}: stopping after {written} file(s)");
            std::process::abort();
        }
    }
    Ok(written)
}

/// Finish an interrupted apply: same as [`write_all`], which skips what is
/// already done.
pub fn roll_forward(root: &Path, changes: &[ChangeRecord]) -> Result<usize, ApplyError> {
    write_all(root, changes)
}

fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.lockstep-tmp"))
}

fn cleanup_temp(target: &Path) {
    let _ = std::fs::remove_file(temp_path(target));
}

fn write_atomic(target: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = temp_path(target);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(contents)?;
    if let Ok(meta) = std::fs::metadata(target) {
        // Keep the permissions (e.g. the executable bit) of the file replaced.
        let _ = file.set_permissions(meta.permissions());
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, target)?;
    sync_parent(target)
}

fn sync_parent(target: &Path) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(root: &Path, path: &str, contents: Option<&str>) -> ChangeRecord {
        ChangeRecord {
            path: path.into(),
            kind: if contents.is_some() {
                ChangeKind::Write
            } else {
                ChangeKind::Delete
            },
            contents: contents.map(|c| c.as_bytes().to_vec()),
            base_contents: None,
            base_hash: file_hash(&root.join(path)).unwrap(),
            new_hash: contents.map(|c| content_hash(c.as_bytes())),
        }
    }

    #[test]
    fn drift_is_detected_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("a"), "a").unwrap();
        let changes = vec![
            record(&root, "a", Some("A")),
            record(&root, "new/b", Some("B")),
        ];
        std::fs::write(root.join("a"), "edited").unwrap();
        match check(&root, &changes) {
            Err(ApplyError::Drift(d)) => {
                assert_eq!(d.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(), ["a"])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_to_string(root.join("a")).unwrap(), "edited");
        assert!(!root.join("new").exists());
    }

    #[test]
    fn writes_deletes_and_rolls_forward_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("a"), "a").unwrap();
        std::fs::write(root.join("gone"), "x").unwrap();
        let changes = vec![
            record(&root, "a", Some("A")),
            record(&root, "d/b", Some("B")),
            record(&root, "gone", None),
        ];
        check(&root, &changes).unwrap();
        // Simulate a crash after the first file: write only it.
        write_all(&root, &changes[..1]).unwrap();
        assert_eq!(roll_forward(&root, &changes).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(root.join("a")).unwrap(), "A");
        assert_eq!(std::fs::read_to_string(root.join("d/b")).unwrap(), "B");
        assert!(!root.join("gone").exists());
        assert_eq!(roll_forward(&root, &changes).unwrap(), 0);
        assert!(!root.join(".a.lockstep-tmp").exists());
    }
}
