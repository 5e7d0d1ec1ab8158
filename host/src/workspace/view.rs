//! The read-only project view that plugins see through the `workspace` import.
//!
//! Every read and listing goes through the project's directory handles
//! ([`ProjectTree`]): no symlink is followed or listed, no component
//! reserved for the host or version control is read or listed at any
//! depth, and only regular files are opened, so a FIFO or device in the
//! project cannot hang or flood a plugin's read.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cap_fs_ext::DirExt;
use cap_std::fs::Dir;
use globset::GlobBuilder;

use super::path::{is_reserved, normalize, PathError, MAX_PATH_LEN};
use super::tree::{kind_name, ProjectTree, TreeError};
use crate::model::FileChange;

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
    tree: Arc<ProjectTree>,
    overlay: BTreeMap<String, Option<Arc<Vec<u8>>>>,
    read_cap: u64,
    list_cap: usize,
}

impl ProjectView {
    /// A view of `root` (canonicalised) with the default caps.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self::of_tree(Arc::new(ProjectTree::open(root)?)))
    }

    /// A view of the project opened as `tree`, with the default caps.
    pub fn of_tree(tree: Arc<ProjectTree>) -> Self {
        Self {
            tree,
            overlay: BTreeMap::new(),
            read_cap: DEFAULT_READ_CAP,
            list_cap: DEFAULT_LIST_CAP,
        }
    }

    /// Set the read cap in bytes.
    pub fn with_read_cap(mut self, cap: u64) -> Self {
        self.read_cap = cap;
        self
    }

    /// The canonical project root.
    pub fn root(&self) -> &Path {
        self.tree.root()
    }

    /// The project's directory handles.
    pub fn tree(&self) -> &Arc<ProjectTree> {
        &self.tree
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

    /// Read a whole file, refusing files over the cap.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let rel = normalize(path)?;
        if let Some(entry) = self.overlay.get(&rel) {
            return match entry {
                Some(bytes) if bytes.len() as u64 > self.read_cap => {
                    Err(FsError::TooLarge(self.read_cap))
                }
                Some(bytes) => Ok(bytes.as_ref().clone()),
                None => Err(FsError::NotFound(rel)),
            };
        }
        match self.tree.read_file(&rel, self.read_cap) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(FsError::NotFound(rel)),
            Err(TreeError::TooLarge { .. }) => Err(FsError::TooLarge(self.read_cap)),
            Err(e) => Err(fs_error(&rel, e)),
        }
    }

    /// Metadata of a file or directory.
    pub fn metadata(&self, path: &str) -> Result<EntryInfo, FsError> {
        let rel = normalize(path)?;
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
        let meta = match self.tree.entry(&rel) {
            Ok(Some(meta)) => meta,
            Ok(None) => return Err(FsError::NotFound(rel)),
            Err(e) => return Err(fs_error(&rel, e)),
        };
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            return Err(PathError::SymlinkEscape(rel).into());
        }
        if !file_type.is_dir() && !file_type.is_file() {
            return Err(FsError::Invalid(format!(
                "`{rel}` is {}, not a regular file",
                kind_name(file_type)
            )));
        }
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
        let root = self
            .tree
            .open_dir("")
            .map_err(|e| fs_error("", e))?
            .ok_or_else(|| FsError::NotFound(".".into()))?;
        self.walk(&root, "", &*matcher, &mut out)?;
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
        dir: &Dir,
        prefix: &str,
        matcher: &dyn Fn(&str) -> bool,
        out: &mut std::collections::BTreeSet<String>,
    ) -> Result<(), FsError> {
        let shown = if prefix.is_empty() { "." } else { prefix };
        let entries = dir
            .entries()
            .map_err(|e| FsError::Io(format!("{shown}: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| FsError::Io(format!("{shown}: {e}")))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // Host state and version control, at every depth.
            if is_reserved(&name).is_some() {
                continue;
            }
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if rel.len() > MAX_PATH_LEN {
                // No plugin could name it.
                continue;
            }
            // The entry's own type: a symlink is not followed.
            let file_type = entry.file_type().map_err(|e| FsError::Io(e.to_string()))?;
            if file_type.is_dir() {
                let Ok(child) = dir.open_dir_nofollow(&name) else {
                    // Replaced (by a symlink, say) since it was listed.
                    continue;
                };
                self.walk(&child, &rel, matcher, out)?;
            } else if file_type.is_file() && matcher(&rel) {
                out.insert(rel);
                if out.len() > self.list_cap {
                    return Err(FsError::TooLarge(self.list_cap as u64));
                }
            }
            // Symlinks, FIFOs, sockets and devices are not listed.
        }
        Ok(())
    }
}

/// The view's answer for what the tree refused.
fn fs_error(rel: &str, e: TreeError) -> FsError {
    match e {
        TreeError::Path(e) => e.into(),
        TreeError::NotAFile {
            found: "a directory",
            ..
        } => FsError::Invalid(format!("`{rel}` is a directory")),
        TreeError::NotAFile { found, .. } => {
            FsError::Invalid(format!("`{rel}` is {found}, not a regular file"))
        }
        TreeError::NotADirectory { parent, found, .. } => {
            FsError::Invalid(format!("`{parent}` is {found}, not a directory"))
        }
        TreeError::TooLarge { limit, .. } => FsError::TooLarge(limit),
        TreeError::Io { source, .. } => io_error(rel, source),
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
