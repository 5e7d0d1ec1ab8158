//! Building and validating a changeset from the executor's step outcomes.
//!
//! Every path is normalised ([`normalize`]), checked on disk through the
//! project's directory handles ([`ProjectTree`]: no symlink, every parent a
//! directory, the target a regular file or absent, its original under
//! [`ChangeLimits::max_original_bytes`]), checked against the other paths
//! of the changeset (no two spellings of one name, no path that is both a
//! file and a directory), and only then recorded with the hash its target
//! had when first seen.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::path::{normalize, shown, spelling_key, PathError};
use super::tree::{ProjectTree, TreeError};
use crate::model::FileChange;
use crate::model::{ChangeKind, ChangeRecord};

/// Largest single file a changeset may write, by default (bytes).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest total a changeset may write, by default (bytes).
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;
/// Most entries a changeset may have, by default.
pub const DEFAULT_MAX_CHANGES: usize = 50_000;
/// Largest original (a target's contents on disk before the change) the
/// host reads, hashes and keeps for the diff, by default (bytes).
pub const DEFAULT_MAX_ORIGINAL_BYTES: u64 = 16 * 1024 * 1024;

/// Hex SHA-256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A change the host refuses to store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The path breaks a path rule.
    #[error("change to `{path}` refused: {reason}")]
    Path {
        /// The path as the plugin gave it (escaped, cut if very long).
        path: String,
        /// The rule it broke.
        reason: PathError,
    },
    /// One file is too large.
    #[error(
        "change to `{path}` refused: {size} bytes exceeds the limit of {limit} bytes per file"
    )]
    FileTooLarge {
        /// The path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The whole changeset is too large.
    #[error("changeset refused: more than {limit} bytes in total")]
    TotalTooLarge {
        /// The limit.
        limit: u64,
    },
    /// Too many entries.
    #[error("changeset refused: it would change more than {limit} files, the most one plan may change; split the action into smaller plans")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// Two spellings of one name: they differ only in letter case or
    /// Unicode normalisation (NFC/NFD), so the changeset would apply
    /// differently on case-insensitive or normalising filesystems.
    #[error("change to `{path}` refused: it and `{other}` differ only in letter case or Unicode normalisation, so they are one file on macOS and Windows but two on Linux; use one spelling (to rename by case, delete the file in one plan and create it in the next)")]
    Collision {
        /// The path that was refused (escaped).
        path: String,
        /// The spelling already in the changeset or on disk (escaped).
        other: String,
    },
    /// The target on disk is not a regular file (a directory, a FIFO, a
    /// device, a socket).
    #[error("change to `{path}` refused: it is {found} on disk, not a regular file; lockstep writes and deletes only regular files")]
    NotAFile {
        /// The path (escaped).
        path: String,
        /// What is there.
        found: &'static str,
    },
    /// A directory on the way to the target is something else on disk.
    #[error("change to `{path}` refused: `{parent}` is {found} on disk, not a directory")]
    ParentNotADirectory {
        /// The path (escaped).
        path: String,
        /// The component in the way (escaped).
        parent: String,
        /// What is there.
        found: &'static str,
    },
    /// The target's current contents are over the cap on originals.
    #[error("change to `{path}` refused: the file on disk is {size} bytes, over the cap of {limit} bytes on originals the host reads and keeps for the diff (`max_original_bytes`); change that file by hand or leave it out of the plan")]
    OriginalTooLarge {
        /// The path (escaped).
        path: String,
        /// Its size on disk.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// Two paths of the changeset where one is a directory of the other
    /// (`a` and `a/b`): one name cannot be a file and a directory at once.
    #[error("change to `{path}` refused: the changeset also changes `{other}`, and one of the two lies inside the other, so one name would have to be both a file and a directory; change them in separate plans")]
    Nested {
        /// The path refused (escaped).
        path: String,
        /// The path already in the changeset (escaped).
        other: String,
    },
    /// The target cannot be read to record its hash.
    #[error("cannot read `{path}` to record its hash: {message}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        message: String,
    },
}

/// Size caps for a changeset.
#[derive(Debug, Clone, Copy)]
pub struct ChangeLimits {
    /// Per-file cap (bytes).
    pub max_file_bytes: u64,
    /// Total cap (bytes).
    pub max_total_bytes: u64,
    /// Entry cap.
    pub max_changes: usize,
    /// Cap on each original the host reads (bytes): the target's contents
    /// before the change, read at Execute and again by the drift check.
    pub max_original_bytes: u64,
}

impl Default for ChangeLimits {
    fn default() -> Self {
        ChangeLimits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_changes: DEFAULT_MAX_CHANGES,
            max_original_bytes: DEFAULT_MAX_ORIGINAL_BYTES,
        }
    }
}

/// Accumulates the outcomes of the steps into one changeset: one entry per
/// path, in order of first appearance, the latest change winning, each with
/// the hash its target had on disk when first seen.
///
/// It refuses a changeset that would create two spellings of one name
/// (see [`ChangeError::Collision`]): two paths of the changeset, or a path
/// of the changeset and a name already on disk, whose [`spelling_key`]s
/// are equal while the paths are not. Spellings that both exist already
/// are left alone: the changeset does not create that collision.
///
/// It also refuses a path that is a directory of another path in the
/// changeset (`a` and `a/b`, see [`ChangeError::Nested`]), and any target
/// that is not a regular file on disk, lies beyond a symlink or a file, or
/// whose original is over [`ChangeLimits::max_original_bytes`].
#[derive(Debug)]
pub struct ChangesetBuilder {
    tree: Arc<ProjectTree>,
    limits: ChangeLimits,
    entries: Vec<ChangeRecord>,
    index: HashMap<String, usize>,
    total: u64,
    /// Spelling key of every path and parent directory seen → its first
    /// spelling and whether that exists on disk.
    spellings: HashMap<String, (String, bool)>,
    /// Per directory (project-relative, "" for the root): spelling key of
    /// each entry on disk → its name.
    listings: HashMap<String, HashMap<String, String>>,
    /// Every directory on the way to a path of the changeset → one such
    /// path (to name it when another path wants that name for a file).
    parents: HashMap<String, String>,
}

impl ChangesetBuilder {
    /// A builder for the project opened as `tree`. Its methods read the
    /// disk (blocking): async code builds a changeset through
    /// [`Workspace::changeset`](super::Workspace::changeset) instead.
    pub fn new(tree: Arc<ProjectTree>, limits: ChangeLimits) -> Self {
        ChangesetBuilder {
            tree,
            limits,
            entries: Vec::new(),
            index: HashMap::new(),
            total: 0,
            spellings: HashMap::new(),
            listings: HashMap::new(),
            parents: HashMap::new(),
        }
    }

    /// Whether `name` exists on disk (not followed). Errors count as
    /// absent here: the target's own check reports them.
    fn exists(&self, rel: &str) -> bool {
        matches!(self.tree.entry(rel), Ok(Some(_)))
    }

    /// Refuse `rel` (a new entry) if a directory on its way is a path of
    /// the changeset, or if it is a directory on the way of one.
    fn check_nesting(&mut self, rel: &str) -> Result<(), ChangeError> {
        if let Some(child) = self.parents.get(rel) {
            return Err(ChangeError::Nested {
                path: shown(rel),
                other: shown(child),
            });
        }
        let mut parents = Vec::new();
        for (i, _) in rel.match_indices('/') {
            let parent = &rel[..i];
            if self.index.contains_key(parent) {
                return Err(ChangeError::Nested {
                    path: shown(rel),
                    other: shown(parent),
                });
            }
            parents.push(parent);
        }
        for parent in parents {
            self.parents
                .entry(parent.to_string())
                .or_insert_with(|| rel.to_string());
        }
        Ok(())
    }

    /// Refuse `rel` (a new entry) if it, or one of its parent directories,
    /// is another spelling of a path in the changeset or of a name on disk.
    fn check_spelling(&mut self, rel: &str) -> Result<(), ChangeError> {
        let mut prefix = String::new();
        // Whether every component so far exists on disk as spelt.
        let mut on_disk = true;
        for component in rel.split('/') {
            let parent_len = prefix.len();
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            let key = spelling_key(&prefix);
            if let Some((spelling, exists)) = self.spellings.get(&key) {
                if *spelling == prefix {
                    on_disk = *exists;
                    continue;
                }
                if !(*exists && self.exists(&prefix)) {
                    return Err(ChangeError::Collision {
                        path: shown(&prefix),
                        other: shown(spelling),
                    });
                }
                on_disk = true;
                continue;
            }
            let exists = on_disk && self.exists(&prefix);
            if on_disk && !exists {
                let parent = prefix[..parent_len].to_string();
                if let Some(name) = self.listing(&parent).get(&spelling_key(component)) {
                    let other = if parent.is_empty() {
                        name.clone()
                    } else {
                        format!("{parent}/{name}")
                    };
                    return Err(ChangeError::Collision {
                        path: shown(&prefix),
                        other: shown(&other),
                    });
                }
            }
            self.spellings.insert(key, (prefix.clone(), exists));
            on_disk = exists;
        }
        Ok(())
    }

    /// The names in directory `dir` on disk by spelling key (empty if it
    /// cannot be read), read once per changeset.
    fn listing(&mut self, dir: &str) -> &HashMap<String, String> {
        let tree = &self.tree;
        self.listings.entry(dir.to_string()).or_insert_with(|| {
            let Ok(Some(handle)) = tree.open_dir(dir) else {
                return HashMap::new();
            };
            let Ok(entries) = handle.entries() else {
                return HashMap::new();
            };
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .map(|name| (spelling_key(&name), name))
                .collect()
        })
    }

    /// Validate one step's changes and add them. Returns them with
    /// normalised paths (for the read overlay of later steps).
    pub fn add(&mut self, changes: Vec<FileChange>) -> Result<Vec<FileChange>, ChangeError> {
        let mut normalised = Vec::with_capacity(changes.len());
        for change in changes {
            let rel = validate_path(change.path())?;
            let contents = match change {
                FileChange::Write { contents, .. } => {
                    self.count(&rel, contents.len() as u64)?;
                    Some(contents)
                }
                FileChange::Delete { .. } => None,
            };
            normalised.push(match &contents {
                Some(c) => FileChange::Write {
                    path: rel.clone(),
                    contents: c.clone(),
                },
                None => FileChange::Delete { path: rel.clone() },
            });
            self.record(rel, contents)?;
        }
        Ok(normalised)
    }

    /// Count a write of `size` bytes to `rel` against the per-file and
    /// total caps.
    fn count(&mut self, rel: &str, size: u64) -> Result<(), ChangeError> {
        if size > self.limits.max_file_bytes {
            return Err(ChangeError::FileTooLarge {
                path: shown(rel),
                size,
                limit: self.limits.max_file_bytes,
            });
        }
        self.total += size;
        if self.total > self.limits.max_total_bytes {
            return Err(ChangeError::TotalTooLarge {
                limit: self.limits.max_total_bytes,
            });
        }
        Ok(())
    }

    /// Record the change of `rel` (normalised) to `contents` (`None`:
    /// deleted): a later change to a path replaces the earlier one; a new
    /// path is checked on disk and against the other paths, and keeps the
    /// contents and hash its target has now.
    fn record(&mut self, rel: String, contents: Option<Vec<u8>>) -> Result<(), ChangeError> {
        let kind = match contents {
            Some(_) => ChangeKind::Write,
            None => ChangeKind::Delete,
        };
        let new_hash = contents.as_deref().map(content_hash);
        if let Some(&i) = self.index.get(&rel) {
            let entry = &mut self.entries[i];
            entry.kind = kind;
            entry.contents = contents;
            entry.new_hash = new_hash;
            return Ok(());
        }
        if self.entries.len() >= self.limits.max_changes {
            return Err(ChangeError::TooMany {
                limit: self.limits.max_changes,
            });
        }
        let base_contents = self
            .tree
            .read_file(&rel, self.limits.max_original_bytes)
            .map_err(|e| tree_error(&rel, e))?;
        self.check_spelling(&rel)?;
        self.check_nesting(&rel)?;
        let base_hash = base_contents.as_deref().map(content_hash);
        self.index.insert(rel.clone(), self.entries.len());
        self.entries.push(ChangeRecord {
            path: rel,
            kind,
            contents,
            base_contents,
            base_hash,
            new_hash,
        });
        Ok(())
    }

    /// The finished changeset. Entries whose result equals the file on disk
    /// (written back unchanged, or deleting an absent file) are dropped.
    pub fn finish(self) -> Vec<ChangeRecord> {
        self.entries
            .into_iter()
            .filter(|c| c.base_hash != c.new_hash)
            .collect()
    }
}

/// Normalise `path` by the path rules ([`normalize`]). Returns the
/// normalised relative path; what it names on disk is checked by
/// [`ProjectTree`] when it is read or written.
pub fn validate_path(path: &str) -> Result<String, ChangeError> {
    normalize(path).map_err(|reason| ChangeError::Path {
        path: shown(path),
        reason,
    })
}

/// The change to `rel` refused for what the tree found on disk.
pub(crate) fn tree_error(rel: &str, e: TreeError) -> ChangeError {
    match e {
        TreeError::Path(reason) => ChangeError::Path {
            path: shown(rel),
            reason,
        },
        TreeError::NotAFile { path, found } => ChangeError::NotAFile { path, found },
        TreeError::NotADirectory {
            path,
            parent,
            found,
        } => ChangeError::ParentNotADirectory {
            path,
            parent,
            found,
        },
        TreeError::TooLarge { path, size, limit } => {
            ChangeError::OriginalTooLarge { path, size, limit }
        }
        TreeError::Io { path, source } => ChangeError::Io {
            path,
            message: source.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write(path: &str, contents: &str) -> FileChange {
        FileChange::Write {
            path: path.into(),
            contents: contents.as_bytes().to_vec(),
        }
    }

    #[test]
    fn merges_by_path_and_keeps_first_base_hash() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("a.txt"), "old").unwrap();
        let tree = Arc::new(ProjectTree::open(&root).unwrap());
        let mut b = ChangesetBuilder::new(tree.clone(), ChangeLimits::default());
        b.add(vec![write("a.txt", "one"), write("./b.txt", "b")])
            .unwrap();
        std::fs::write(root.join("a.txt"), "changed meanwhile").unwrap();
        b.add(vec![
            write("a.txt", "two"),
            FileChange::Delete {
                path: "gone.txt".into(),
            },
        ])
        .unwrap();
        let cs = b.finish();
        assert_eq!(cs.len(), 2, "deleting an absent file is dropped");
        assert_eq!(cs[0].path, "a.txt");
        assert_eq!(cs[0].contents.as_deref(), Some(&b"two"[..]));
        assert_eq!(cs[0].base_hash, Some(content_hash(b"old")));
        assert_eq!(cs[1].path, "b.txt");
        assert_eq!(cs[1].base_hash, None);
    }

    #[test]
    fn rejects_bad_paths_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let limits = ChangeLimits {
            max_file_bytes: 4,
            max_total_bytes: 6,
            max_changes: 2,
            max_original_bytes: 4,
        };
        let tree = Arc::new(ProjectTree::open(&root).unwrap());
        let err = |c: Vec<FileChange>| {
            ChangesetBuilder::new(tree.clone(), limits)
                .add(c)
                .unwrap_err()
        };
        assert!(matches!(
            err(vec![write("../x", "")]),
            ChangeError::Path {
                reason: PathError::ParentDir(_),
                ..
            }
        ));
        assert!(matches!(
            err(vec![write("/etc/x", "")]),
            ChangeError::Path {
                reason: PathError::Absolute(_),
                ..
            }
        ));
        assert!(matches!(
            err(vec![write(".lockstep/x", "")]),
            ChangeError::Path {
                reason: PathError::Reserved(..),
                ..
            }
        ));
        assert!(matches!(
            err(vec![write("big", "12345")]),
            ChangeError::FileTooLarge { size: 5, .. }
        ));
        assert!(matches!(
            err(vec![write("a", "1234"), write("b", "123")]),
            ChangeError::TotalTooLarge { .. }
        ));
        assert!(matches!(
            err(vec![write("a", ""), write("b", ""), write("c", "")]),
            ChangeError::TooMany { limit: 2 }
        ));
        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
            assert!(matches!(
                err(vec![write("link/x", "")]),
                ChangeError::Path {
                    reason: PathError::SymlinkEscape(_),
                    ..
                }
            ));
        }
    }

    /// Whether the temp directory's filesystem tells `A` from `a`.
    fn case_sensitive(root: &Path) -> bool {
        std::fs::write(root.join("CaseProbe"), "").unwrap();
        let sensitive = !root.join("caseprobe").exists();
        std::fs::remove_file(root.join("CaseProbe")).unwrap();
        sensitive
    }

    #[test]
    fn refuses_two_spellings_of_one_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        if !case_sensitive(&root) {
            return;
        }
        std::fs::write(root.join("README.md"), "readme").unwrap();
        std::fs::create_dir(root.join("src")).unwrap();
        let tree = Arc::new(ProjectTree::open(&root).unwrap());
        let add = |c: Vec<FileChange>| {
            ChangesetBuilder::new(tree.clone(), ChangeLimits::default()).add(c)
        };
        let collision = |c: Vec<FileChange>| match add(c) {
            Err(ChangeError::Collision { path, other }) => (path, other),
            other => panic!("expected a collision, got {other:?}"),
        };
        // Within one changeset: case, and NFC against NFD.
        assert_eq!(
            collision(vec![write("A.txt", "1"), write("a.txt", "2")]),
            ("a.txt".into(), "A.txt".into())
        );
        let (path, other) = collision(vec![
            write("caf\u{e9}.txt", "1"),
            write("cafe\u{301}.txt", "2"),
        ]);
        assert_eq!(
            (path.as_str(), other.as_str()),
            ("cafe\\u{301}.txt", "caf\\u{e9}.txt")
        );
        // Against names on disk, for files and for directories on the way.
        assert_eq!(
            collision(vec![write("readme.md", "x")]),
            ("readme.md".into(), "README.md".into())
        );
        assert_eq!(
            collision(vec![write("Src/lib.rs", "x")]),
            ("Src".into(), "src".into())
        );
        assert_eq!(
            collision(vec![FileChange::Delete {
                path: "readme.MD".into()
            }]),
            ("readme.MD".into(), "README.md".into())
        );
        // Two new directories spelt differently.
        assert_eq!(
            collision(vec![write("New/a.rs", "x"), write("new/b.rs", "x")]),
            ("new".into(), "New".into())
        );
        // The message says what to do.
        let message = add(vec![write("A.txt", ""), write("a.txt", "")])
            .unwrap_err()
            .to_string();
        assert!(message.contains("macOS and Windows"), "{message}");
        // Fine: one spelling used twice, distinct names, existing spellings.
        add(vec![
            write("README.md", "1"),
            write("src/a.rs", "2"),
            write("./README.md", "3"),
            write("src/b.rs", "4"),
        ])
        .unwrap();
        std::fs::write(root.join("readme.md"), "both exist already").unwrap();
        add(vec![write("README.md", "1"), write("readme.md", "2")]).unwrap();
    }

    #[test]
    fn long_and_nul_paths_are_refused_with_short_messages() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let tree = Arc::new(ProjectTree::open(&root).unwrap());
        let mut b = ChangesetBuilder::new(tree.clone(), ChangeLimits::default());
        let err = b.add(vec![write(&"n".repeat(5000), "")]).unwrap_err();
        assert!(matches!(
            err,
            ChangeError::Path {
                reason: PathError::TooLong(5000),
                ..
            }
        ));
        assert!(err.to_string().len() < 400, "{err}");
        let err = b.add(vec![write("bad\0name", "")]).unwrap_err();
        assert!(err.to_string().contains("bad\\u{0}name"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_the_root_does_not_open_the_host_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join(".lockstep")).unwrap();
        std::fs::write(root.join(".lockstep/lockstep.db"), "db").unwrap();
        std::os::unix::fs::symlink(".", root.join("self")).unwrap();
        let tree = Arc::new(ProjectTree::open(&root).unwrap());
        let mut b = ChangesetBuilder::new(tree.clone(), ChangeLimits::default());
        for path in ["self/.lockstep/lockstep.db", "self/.LockStep/self/config"] {
            assert!(
                matches!(
                    b.add(vec![write(path, "x")]),
                    Err(ChangeError::Path {
                        reason: PathError::Reserved(..),
                        ..
                    })
                ),
                "{path}"
            );
        }
        assert!(b.finish().is_empty());
    }
}
