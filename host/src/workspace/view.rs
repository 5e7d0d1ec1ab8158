//! The read-only project view that plugins see through the `workspace` import.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::GlobBuilder;

use super::path::{normalize, resolve_in_root, PathError, RESERVED_DIRS};
use crate::lifecycle::FileChange;

/// Largest file a plugin may read in one call (bytes), by default.
pub const DEFAULT_READ_CAP: u64 = 8 * 1024 * 1024;
/// Most entries one `list` call returns, by default.
pub const DEFAULT_LIST_CAP: usize = 100_000;

/// Why a workspace read was refused (mirrors WIT `fs-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// No such file (or deleted by an earlier step).
    #[error("not found: {0}")]
    NotFound(String),
    /// The path leaves the project or names host-private state.
    #[error("denied: {0}")]
    Denied(String),
    /// The file is larger than the cap (bytes).
    #[error("file is larger than the read cap of {0} bytes")]
    TooLarge(u64),
    /// Malformed path or pattern.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Other I/O failure.
    #[error("i/o error: {0}")]
    Io(String),
}

impl From<PathError> for FsError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::Empty | PathError::BadCharacter(_) | PathError::TooLong(_) => {
                FsError::Invalid(e.to_string())
            }
            _ => FsError::Denied(e.to_string()),
        }
    }
}

/// Metadata of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Project-relative path.
    pub path: String,
    /// `true` for directories.
    pub is_dir: bool,
    /// Size in bytes.
    pub size: u64,
}

/// A read-only view of a project directory, optionally overlaid with the
/// changes of earlier steps (`None` = deleted).
#[derive(Debug, Clone)]
pub struct ProjectView {
    root: PathBuf,
    overlay: BTreeMap<String, Option<Arc<Vec<u8>>>>,
    read_cap: u64,
    list_cap: usize,
}

impl ProjectView {
    /// A view of `root` (canonicalised) with the default caps.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: std::fs::canonicalize(root)?,
            overlay: BTreeMap::new(),
            read_cap: DEFAULT_READ_CAP,
            list_cap: DEFAULT_LIST_CAP,
        })
    }

    /// Set the read cap in bytes.
    pub fn with_read_cap(mut self, cap: u64) -> Self {
        self.read_cap = cap;
        self
    }

    /// The canonical project root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The read cap in bytes.
    pub fn read_cap(&self) -> u64 {
        self.read_cap
    }

    /// Layer `changes` (already validated) over the view. They are taken by
    /// value so that the overlay does not hold another copy of every write.
    pub fn overlay_changes(&mut self, changes: impl IntoIterator<Item = FileChange>) {
        for change in changes {
            match change {
                FileChange::Write { path, contents } => {
                    self.overlay.insert(path, Some(Arc::new(contents)));
                }
                FileChange::Delete { path } => {
                    self.overlay.insert(path, None);
                }
            }
        }
    }

    fn resolve(&self, path: &str) -> Result<(String, PathBuf), FsError> {
        let rel = normalize(path)?;
        let abs = resolve_in_root(&self.root, &rel)?;
        Ok((rel, abs))
    }

    /// Read a whole file, refusing files over the cap.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let (rel, abs) = self.resolve(path)?;
        if let Some(entry) = self.overlay.get(&rel) {
            return match entry {
                Some(bytes) if bytes.len() as u64 > self.read_cap => {
                    Err(FsError::TooLarge(self.read_cap))
                }
                Some(bytes) => Ok(bytes.as_ref().clone()),
                None => Err(FsError::NotFound(rel)),
            };
        }
        let meta = std::fs::metadata(&abs).map_err(|e| io_error(&rel, e))?;
        if meta.is_dir() {
            return Err(FsError::Invalid(format!("`{rel}` is a directory")));
        }
        if meta.len() > self.read_cap {
            return Err(FsError::TooLarge(self.read_cap));
        }
        let bytes = std::fs::read(&abs).map_err(|e| io_error(&rel, e))?;
        if bytes.len() as u64 > self.read_cap {
            return Err(FsError::TooLarge(self.read_cap));
        }
        Ok(bytes)
    }

    /// Metadata of a file or directory.
    pub fn metadata(&self, path: &str) -> Result<EntryInfo, FsError> {
        let (rel, abs) = self.resolve(path)?;
        if let Some(entry) = self.overlay.get(&rel) {
            return match entry {
                Some(bytes) => Ok(EntryInfo {
                    path: rel,
                    is_dir: false,
                    size: bytes.len() as u64,
                }),
                None => Err(FsError::NotFound(rel)),
            };
        }
        let meta = std::fs::metadata(&abs).map_err(|e| io_error(&rel, e))?;
        Ok(EntryInfo {
            path: rel,
            is_dir: meta.is_dir(),
            size: if meta.is_dir() { 0 } else { meta.len() },
        })
    }

    /// Files matching `pattern`: empty = all, trailing `/` = directory
    /// prefix, anything else a glob (`**/*.rs`). Sorted, capped.
    pub fn list(&self, pattern: &str) -> Result<Vec<String>, FsError> {
        let matcher: Box<dyn Fn(&str) -> bool> = if pattern.is_empty() {
            Box::new(|_| true)
        } else if let Some(prefix) = pattern.strip_suffix('/') {
            let prefix = normalize(prefix)?;
            Box::new(move |p: &str| {
                p.starts_with(&prefix) && p.as_bytes().get(prefix.len()) == Some(&b'/')
            })
        } else {
            if pattern.contains("..") || pattern.starts_with('/') || pattern.contains('\0') {
                return Err(FsError::Denied(format!(
                    "pattern `{pattern}` leaves the project"
                )));
            }
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| FsError::Invalid(format!("bad glob `{pattern}`: {e}")))?
                .compile_matcher();
            Box::new(move |p: &str| glob.is_match(p))
        };
        let mut out = std::collections::BTreeSet::new();
        self.walk(&self.root, "", &*matcher, &mut out)?;
        for (path, entry) in &self.overlay {
            match entry {
                Some(_) if matcher(path) => {
                    out.insert(path.clone());
                }
                None => {
                    out.remove(path);
                }
                _ => {}
            }
        }
        if out.len() > self.list_cap {
            return Err(FsError::TooLarge(self.list_cap as u64));
        }
        Ok(out.into_iter().collect())
    }

    fn walk(
        &self,
        dir: &Path,
        prefix: &str,
        matcher: &dyn Fn(&str) -> bool,
        out: &mut std::collections::BTreeSet<String>,
    ) -> Result<(), FsError> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| FsError::Io(format!("{}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| FsError::Io(e.to_string()))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if prefix.is_empty() && RESERVED_DIRS.iter().any(|r| name.eq_ignore_ascii_case(r)) {
                continue;
            }
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let file_type = entry.file_type().map_err(|e| FsError::Io(e.to_string()))?;
            if file_type.is_dir() {
                self.walk(&entry.path(), &rel, matcher, out)?;
            } else if file_type.is_file() && matcher(&rel) {
                out.insert(rel);
                if out.len() > self.list_cap {
                    return Err(FsError::TooLarge(self.list_cap as u64));
                }
            }
            // Symlinks are not listed: reading through one is checked on read.
        }
        Ok(())
    }
}

fn io_error(rel: &str, e: std::io::Error) -> FsError {
    match e.kind() {
        std::io::ErrorKind::NotFound => FsError::NotFound(rel.to_string()),
        std::io::ErrorKind::PermissionDenied => FsError::Denied(rel.to_string()),
        _ => FsError::Io(format!("{rel}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, ProjectView) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/nested")).unwrap();
        std::fs::create_dir_all(dir.path().join(".lockstep")).unwrap();
        std::fs::write(dir.path().join("src/a.rs"), "a").unwrap();
        std::fs::write(dir.path().join("src/nested/b.rs"), "bb").unwrap();
        std::fs::write(dir.path().join("README.md"), "r").unwrap();
        std::fs::write(dir.path().join(".lockstep/lockstep.db"), "secret").unwrap();
        let view = ProjectView::new(dir.path()).unwrap();
        (dir, view)
    }

    #[test]
    fn lists_globs_prefixes_and_hides_host_state() {
        let (_d, view) = project();
        assert_eq!(
            view.list("").unwrap(),
            vec!["README.md", "src/a.rs", "src/nested/b.rs"]
        );
        assert_eq!(
            view.list("**/*.rs").unwrap(),
            vec!["src/a.rs", "src/nested/b.rs"]
        );
        assert_eq!(view.list("src/*.rs").unwrap(), vec!["src/a.rs"]);
        assert_eq!(view.list("src/nested/").unwrap(), vec!["src/nested/b.rs"]);
        assert!(matches!(view.list("../*"), Err(FsError::Denied(_))));
    }

    #[test]
    fn reads_are_jailed_and_capped() {
        let (_d, view) = project();
        assert_eq!(view.read("src/a.rs").unwrap(), b"a");
        assert!(matches!(view.read("../outside"), Err(FsError::Denied(_))));
        assert!(matches!(view.read("/etc/passwd"), Err(FsError::Denied(_))));
        assert!(matches!(
            view.read(".lockstep/lockstep.db"),
            Err(FsError::Denied(_))
        ));
        assert!(matches!(view.read("missing"), Err(FsError::NotFound(_))));
        let small = view.clone().with_read_cap(1);
        assert_eq!(small.read("src/nested/b.rs"), Err(FsError::TooLarge(1)));
        assert_eq!(small.read("src/a.rs").unwrap(), b"a");
    }

    #[test]
    fn overlay_shows_earlier_steps() {
        let (_d, mut view) = project();
        view.overlay_changes([
            FileChange::Write {
                path: "new.txt".into(),
                contents: b"n".to_vec(),
            },
            FileChange::Delete {
                path: "README.md".into(),
            },
        ]);
        assert_eq!(view.read("new.txt").unwrap(), b"n");
        assert!(matches!(view.read("README.md"), Err(FsError::NotFound(_))));
        assert_eq!(
            view.list("").unwrap(),
            vec!["new.txt", "src/a.rs", "src/nested/b.rs"]
        );
    }
}
