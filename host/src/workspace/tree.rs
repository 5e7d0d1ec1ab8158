//! The project tree through capability-based directory handles
//! (`cap_std::fs::Dir`): every read, listing and write of a project goes
//! through here, never through a path string.
//!
//! Each path component is opened on its own, relative to its parent's
//! handle and without following symlinks (`O_NOFOLLOW`; cap-std also keeps
//! every lookup beneath the handle), so a symlink — committed to a checkout
//! or swapped in while lockstep runs — can lead no operation elsewhere,
//! and nothing is resolved again between a check and the operation it
//! guards. A component reserved for the host or version control
//! ([`is_reserved`]) is refused here too, whatever the caller checked.
//!
//! A file is read only when it is a regular file: its type is looked at
//! (`lstat`) before it is opened, and checked again on the handle (`fstat`)
//! of a non-blocking, non-following open, so a FIFO, a socket or a device
//! node in a project neither hangs nor floods the reader. Reads are capped.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use cap_fs_ext::{
    DirExt, FileTypeExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt,
    OpenOptionsSyncExt,
};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, FileType, Metadata, OpenOptions};

use super::path::{is_reserved, shown, PathError};

/// Why an operation on the project tree was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The path breaks a path rule on disk: a component is a symlink
    /// ([`PathError::SymlinkEscape`]) or reserved ([`PathError::Reserved`]).
    #[error(transparent)]
    Path(#[from] PathError),
    /// The path names something other than a regular file (a directory, a
    /// FIFO, a device, a socket) where a file is read, written or deleted.
    #[error("`{path}` is {found} on disk, not a regular file; lockstep reads, writes and deletes only regular files")]
    NotAFile {
        /// The path (escaped).
        path: String,
        /// What is there (`a FIFO`, `a directory`, …).
        found: &'static str,
    },
    /// A parent component is not a directory.
    #[error("`{path}` cannot be reached: `{parent}` is {found} on disk, not a directory")]
    NotADirectory {
        /// The path (escaped).
        path: String,
        /// The component that is not a directory (escaped).
        parent: String,
        /// What is there.
        found: &'static str,
    },
    /// The file is larger than the read cap.
    #[error("`{path}` is {size} bytes on disk, over the cap of {limit} bytes")]
    TooLarge {
        /// The path (escaped).
        path: String,
        /// Its size (at least `limit + 1` if it grew while read).
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// The operating system refused an operation.
    #[error("`{path}`: {source}")]
    Io {
        /// The path (escaped).
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl TreeError {
    /// An I/O error on `rel`.
    pub(crate) fn io(rel: &str, source: io::Error) -> Self {
        TreeError::Io {
            path: shown(rel),
            source,
        }
    }
}

/// A human name for a file type, for messages.
pub(crate) fn kind_name(t: FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// `name` in `dir` as it is, without following it; `None` if absent.
pub(crate) fn lstat(dir: &Dir, name: &str) -> io::Result<Option<Metadata>> {
    match dir.symlink_metadata(name) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Flush `dir`'s entries to disk. The handles of [`ProjectTree`] are
/// opened for lookups only (`O_PATH` on Linux), so the directory is
/// opened again, for reading, through its own handle.
pub(crate) fn sync_dir(dir: &Dir) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.read(true).maybe_dir(true);
    dir.open_with(".", &options)?.sync_all()
}

/// Read the regular file `name` in `dir` (`rel` is its project path, for
/// messages), at most `limit` bytes; `None` if absent. Anything that is not
/// a regular file is refused before it is opened, and again on the handle.
pub(crate) fn read_in(
    dir: &Dir,
    name: &str,
    rel: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, TreeError> {
    let not_a_file = |t: FileType| -> TreeError {
        if t.is_symlink() {
            PathError::SymlinkEscape(shown(rel)).into()
        } else {
            TreeError::NotAFile {
                path: shown(rel),
                found: kind_name(t),
            }
        }
    };
    match lstat(dir, name).map_err(|e| TreeError::io(rel, e))? {
        None => return Ok(None),
        Some(meta) if !meta.is_file() => return Err(not_a_file(meta.file_type())),
        Some(_) => {}
    }
    let mut options = OpenOptions::new();
    options.read(true).follow(FollowSymlinks::No).nonblock(true);
    let file = match dir.open_with(name, &options) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            // Swapped for a symlink or something else since the look?
            return Err(match lstat(dir, name) {
                Ok(Some(meta)) if !meta.is_file() => not_a_file(meta.file_type()),
                _ => TreeError::io(rel, e),
            });
        }
    };
    let meta = file.metadata().map_err(|e| TreeError::io(rel, e))?;
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    let too_large = |size| TreeError::TooLarge {
        path: shown(rel),
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    (&file)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| TreeError::io(rel, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(Some(bytes))
}

/// Directories [`ProjectTree::walk`] created (project-relative, outermost
/// first), so that a failed apply can take them away again.
#[derive(Debug, Default)]
pub(crate) struct Created {
    /// Their paths.
    pub(crate) dirs: Vec<String>,
}

/// `rel` split into its directory (`""` for the root) and last component.
pub(crate) fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

/// A project directory opened once; every operation goes through its handle.
#[derive(Debug)]
pub struct ProjectTree {
    root: Dir,
    path: PathBuf,
}

impl ProjectTree {
    /// Open the project at `root` (canonicalised). The root itself is the
    /// user's choice and is trusted; everything beneath it is not.
    pub fn open(root: &Path) -> io::Result<Self> {
        let path = std::fs::canonicalize(root)?;
        let handle = Dir::open_ambient_dir(&path, ambient_authority())?;
        Ok(ProjectTree { root: handle, path })
    }

    /// The canonical project root (for messages and ids only: nothing is
    /// opened through it).
    pub fn root(&self) -> &Path {
        &self.path
    }

    /// Open the directory `rel` (normalised; `""` is the root) one
    /// component at a time without following symlinks; `None` if a
    /// component is missing.
    pub(crate) fn open_dir(&self, rel: &str) -> Result<Option<Dir>, TreeError> {
        self.walk(rel, rel, None)
    }

    /// Open the directory `dirs` (a prefix of `rel`, which messages name)
    /// one component at a time, never following a symlink. A missing
    /// component is created when `created` is given (and recorded there);
    /// otherwise the answer is `None`.
    pub(crate) fn walk(
        &self,
        dirs: &str,
        rel: &str,
        mut created: Option<&mut Created>,
    ) -> Result<Option<Dir>, TreeError> {
        let mut dir = self.root.try_clone().map_err(|e| TreeError::io(rel, e))?;
        if dirs.is_empty() {
            return Ok(Some(dir));
        }
        // Refused whether or not it exists.
        if let Some(reserved) = dirs.split('/').find_map(is_reserved) {
            return Err(PathError::Reserved(shown(rel), reserved.into()).into());
        }
        let mut reached = 0;
        for component in dirs.split('/') {
            reached += component.len() + usize::from(reached > 0);
            let here = &dirs[..reached];
            match step(&dir, component, rel, here, created.as_deref_mut())? {
                Some(next) => dir = next,
                None => return Ok(None),
            }
        }
        Ok(Some(dir))
    }

    /// The handle of the directory holding `rel` (normalised, non-empty)
    /// and `rel`'s last component, as [`walk`](Self::walk) opens it.
    pub(crate) fn parent<'r>(
        &self,
        rel: &'r str,
        created: Option<&mut Created>,
    ) -> Result<Option<(Dir, &'r str)>, TreeError> {
        let (dirs, name) = split(rel);
        if let Some(reserved) = is_reserved(name) {
            return Err(PathError::Reserved(shown(rel), reserved.into()).into());
        }
        Ok(self.walk(dirs, rel, created)?.map(|dir| (dir, name)))
    }

    /// What `rel` is on disk, without following it: `None` if it (or a
    /// directory on the way) is absent.
    pub fn entry(&self, rel: &str) -> Result<Option<Metadata>, TreeError> {
        let Some((dir, name)) = self.parent(rel, None)? else {
            return Ok(None);
        };
        lstat(&dir, name).map_err(|e| TreeError::io(rel, e))
    }

    /// The regular file `rel`, at most `limit` bytes; `None` if absent.
    pub fn read_file(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, TreeError> {
        let Some((dir, name)) = self.parent(rel, None)? else {
            return Ok(None);
        };
        read_in(&dir, name, rel, limit)
    }
}

/// Open the child directory `component` of `dir` (reached as `here`, on the
/// way to `rel`) without following it; create it first if missing and
/// `created` is given.
fn step(
    dir: &Dir,
    component: &str,
    rel: &str,
    here: &str,
    created: Option<&mut Created>,
) -> Result<Option<Dir>, TreeError> {
    if let Some(reserved) = is_reserved(component) {
        return Err(PathError::Reserved(shown(rel), reserved.into()).into());
    }
    let error = match dir.open_dir_nofollow(component) {
        Ok(next) => return Ok(Some(next)),
        Err(e) => e,
    };
    match lstat(dir, component).map_err(|e| TreeError::io(rel, e))? {
        None => {
            let Some(created) = created else {
                return Ok(None);
            };
            // `mkdirat` never follows a symlink; the open after it does not
            // either, so a symlink raced in here is refused.
            match dir.create_dir(component) {
                Ok(()) => created.dirs.push(here.to_string()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(TreeError::io(here, e)),
            }
            step(dir, component, rel, here, None)?
                .ok_or_else(|| TreeError::io(here, error))
                .map(Some)
        }
        Some(meta) if meta.file_type().is_symlink() => {
            Err(PathError::SymlinkEscape(shown(rel)).into())
        }
        Some(meta) if meta.is_dir() => Err(TreeError::io(here, error)),
        Some(meta) => Err(TreeError::NotADirectory {
            path: shown(rel),
            parent: shown(here),
            found: kind_name(meta.file_type()),
        }),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, tempfile::TempDir, ProjectTree) {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x"), "outside").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/lib.rs"), "lib").unwrap();
        std::fs::create_dir_all(root.join(".lockstep")).unwrap();
        std::fs::write(root.join(".lockstep/lockstep.db"), "db").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("src"), root.join("in")).unwrap();
        std::os::unix::fs::symlink(".", root.join("self")).unwrap();
        std::os::unix::fs::symlink(".lockstep", root.join("priv")).unwrap();
        let tree = ProjectTree::open(&root).unwrap();
        (outside, dir, tree)
    }

    fn symlink_refused(r: Result<Option<Vec<u8>>, TreeError>) -> bool {
        matches!(r, Err(TreeError::Path(PathError::SymlinkEscape(_))))
    }

    #[test]
    fn symlinks_are_never_followed() {
        let (_o, _d, tree) = project();
        assert_eq!(tree.read_file("src/lib.rs", 100).unwrap().unwrap(), b"lib");
        for rel in [
            "out/x",
            "in/lib.rs",
            "self/src/lib.rs",
            "priv/lockstep.db",
            "in",
        ] {
            assert!(symlink_refused(tree.read_file(rel, 100)), "{rel}");
        }
        assert!(matches!(
            tree.read_file("self/.lockstep/lockstep.db", 100),
            Err(TreeError::Path(PathError::Reserved(..)))
        ));
        assert!(tree.read_file("src/missing", 100).unwrap().is_none());
        assert!(tree.read_file("missing/dir/x", 100).unwrap().is_none());
        let mut created = Created::default();
        assert!(matches!(
            tree.parent("out/new/file", Some(&mut created)),
            Err(TreeError::Path(PathError::SymlinkEscape(_)))
        ));
        assert!(created.dirs.is_empty());
    }

    #[test]
    fn reserved_components_are_refused_by_the_tree_too() {
        let (_o, _d, tree) = project();
        assert!(matches!(
            tree.read_file(".lockstep/lockstep.db", 100),
            Err(TreeError::Path(PathError::Reserved(..)))
        ));
        assert!(matches!(
            tree.parent("a/.Git/config", None),
            Err(TreeError::Path(PathError::Reserved(..)))
        ));
    }

    #[test]
    fn a_file_in_the_way_is_not_a_directory() {
        let (_o, _d, tree) = project();
        let mut created = Created::default();
        match tree.parent("src/lib.rs/x", Some(&mut created)) {
            Err(TreeError::NotADirectory { parent, found, .. }) => {
                assert_eq!(parent, "src/lib.rs");
                assert_eq!(found, "a regular file");
            }
            other => panic!("{other:?}"),
        }
        match tree.read_file("src", 100) {
            Err(TreeError::NotAFile { found, .. }) => assert_eq!(found, "a directory"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_directories_are_created_and_recorded() {
        let (_o, d, tree) = project();
        let mut created = Created::default();
        let (dir, name) = tree
            .parent("n/m/file", Some(&mut created))
            .unwrap()
            .unwrap();
        assert_eq!(name, "file");
        assert_eq!(created.dirs, ["n", "n/m"]);
        dir.write(name, "x").unwrap();
        assert_eq!(std::fs::read(d.path().join("n/m/file")).unwrap(), b"x");
        sync_dir(&dir).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_being_opened() {
        let (_o, d, tree) = project();
        let fifo = d.path().join("src/pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let started = std::time::Instant::now();
        match tree.read_file("src/pipe", 100) {
            Err(TreeError::NotAFile { found, .. }) => assert_eq!(found, "a FIFO"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn reads_are_capped() {
        let (_o, d, tree) = project();
        std::fs::write(d.path().join("big"), vec![b'x'; 10]).unwrap();
        assert_eq!(tree.read_file("big", 10).unwrap().unwrap().len(), 10);
        assert!(matches!(
            tree.read_file("big", 9),
            Err(TreeError::TooLarge {
                size: 10,
                limit: 9,
                ..
            })
        ));
    }
}
