//! Building and validating a changeset from the executor's step outcomes.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::path::{normalize, resolve_in_root, shown, spelling_key, PathError};
use crate::lifecycle::FileChange;
use crate::store::{ChangeKind, ChangeRecord};

/// Largest single file a changeset may write, by default (bytes).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest total a changeset may write, by default (bytes).
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;
/// Most entries a changeset may have, by default.
pub const DEFAULT_MAX_CHANGES: usize = 50_000;

/// Hex SHA-256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hash of the file at `path` now, `None` if it does not exist.
pub fn file_hash(path: &Path) -> std::io::Result<Option<String>> {
    Ok(read_if_exists(path)?.map(|bytes| content_hash(&bytes)))
}

/// The file's contents, `None` if it does not exist.
pub fn read_if_exists(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
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
}

impl Default for ChangeLimits {
    fn default() -> Self {
        ChangeLimits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_changes: DEFAULT_MAX_CHANGES,
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
#[derive(Debug)]
pub struct ChangesetBuilder<'a> {
    root: &'a Path,
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
}

impl<'a> ChangesetBuilder<'a> {
    /// A builder for the project at canonical `root`.
    pub fn new(root: &'a Path, limits: ChangeLimits) -> Self {
        ChangesetBuilder {
            root,
            limits,
            entries: Vec::new(),
            index: HashMap::new(),
            total: 0,
            spellings: HashMap::new(),
            listings: HashMap::new(),
        }
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
                if !(*exists && self.root.join(&prefix).symlink_metadata().is_ok()) {
                    return Err(ChangeError::Collision {
                        path: shown(&prefix),
                        other: shown(spelling),
                    });
                }
                on_disk = true;
                continue;
            }
            let exists = on_disk && self.root.join(&prefix).symlink_metadata().is_ok();
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
        let root = self.root;
        self.listings.entry(dir.to_string()).or_insert_with(|| {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
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
            let rel = validate_path(self.root, change.path())?;
            let (kind, contents) = match change {
                FileChange::Write { contents, .. } => {
                    let size = contents.len() as u64;
                    if size > self.limits.max_file_bytes {
                        return Err(ChangeError::FileTooLarge {
                            path: shown(&rel),
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
                    (ChangeKind::Write, Some(contents))
                }
                FileChange::Delete { .. } => (ChangeKind::Delete, None),
            };
            let new_hash = contents.as_deref().map(content_hash);
            normalised.push(match &contents {
                Some(c) => FileChange::Write {
                    path: rel.clone(),
                    contents: c.clone(),
                },
                None => FileChange::Delete { path: rel.clone() },
            });
            match self.index.get(&rel) {
                Some(&i) => {
                    let entry = &mut self.entries[i];
                    entry.kind = kind;
                    entry.contents = contents;
                    entry.new_hash = new_hash;
                }
                None => {
                    if self.entries.len() >= self.limits.max_changes {
                        return Err(ChangeError::TooMany {
                            limit: self.limits.max_changes,
                        });
                    }
                    self.check_spelling(&rel)?;
                    let abs = self.root.join(&rel);
                    let base_contents = read_if_exists(&abs).map_err(|e| ChangeError::Io {
                        path: rel.clone(),
                        message: e.to_string(),
                    })?;
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
                }
            }
        }
        Ok(normalised)
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

/// Normalise `path` and check it stays in the project on the real
/// filesystem (no symlink out). Returns the normalised relative path.
pub fn validate_path(root: &Path, path: &str) -> Result<String, ChangeError> {
    let rel = normalize(path).map_err(|reason| ChangeError::Path {
        path: shown(path),
        reason,
    })?;
    resolve_in_root(root, &rel).map_err(|reason| ChangeError::Path {
        path: shown(&rel),
        reason,
    })?;
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut b = ChangesetBuilder::new(&root, ChangeLimits::default());
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
        };
        let err = |c: Vec<FileChange>| ChangesetBuilder::new(&root, limits).add(c).unwrap_err();
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
        let add = |c: Vec<FileChange>| ChangesetBuilder::new(&root, ChangeLimits::default()).add(c);
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
        let mut b = ChangesetBuilder::new(&root, ChangeLimits::default());
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
        let mut b = ChangesetBuilder::new(&root, ChangeLimits::default());
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
