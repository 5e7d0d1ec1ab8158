//! The user's own directories: the compiled-component cache and the config
//! directory (where project trust is recorded). Where they are, how they
//! are created (closed to others), and the checks made before anything read
//! from them is believed: a directory or file there must belong to the
//! effective user and must not be writable by group or others, otherwise
//! someone else could have put it there.
//!
//! The cache's secret key lives here too: 32 random bytes in `key`, a file
//! of mode `0600` created atomically, refused if anyone else could have
//! written or read it.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::RngCore;

/// Environment variable naming the compiled-component cache directory.
pub const CACHE_DIR_ENV: &str = "LOCKSTEP_CACHE_DIR";
/// Environment variable naming the user's lockstep config directory
/// (where `trusted.toml` is kept).
pub const CONFIG_DIR_ENV: &str = "LOCKSTEP_CONFIG_DIR";
/// The file name of the cache key, in the cache directory.
pub const KEY_FILE: &str = "key";
/// Bytes of the cache key.
pub const KEY_LEN: usize = 32;

/// A secret known only to the user's own lockstep processes: artifacts in
/// the cache are authenticated with it.
#[derive(Clone, Copy)]
pub struct CacheKey(pub(crate) [u8; KEY_LEN]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

/// Why a directory or file of the user's cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum UserDirError {
    /// It belongs to someone else.
    #[error("{path} is owned by uid {owner}, not by you (uid {you})")]
    NotOwned {
        /// The directory or file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective user.
        you: u32,
    },
    /// Group or others may write to it.
    #[error("{path} has mode {mode:04o}: group or others may write to it")]
    OpenToOthers {
        /// The directory or file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It is not a directory (or is a symbolic link where a directory of
    /// ours must be).
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The key file is not what lockstep writes.
    #[error(
        "the cache key {path} must be a {KEY_LEN}-byte regular file of mode 0600 owned by you (uid {you}); \
         found mode {mode:04o}, owner uid {owner}, {len} bytes"
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Its owner.
        owner: u32,
        /// The effective user.
        you: u32,
        /// Its length.
        len: u64,
    },
    /// The file system said no.
    #[error("cannot create or examine {path}: {source}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl UserDirError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UserDirError + '_ {
        move |source| UserDirError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The directory or file the problem is about.
    pub fn path(&self) -> &Path {
        match self {
            UserDirError::NotOwned { path, .. }
            | UserDirError::OpenToOthers { path, .. }
            | UserDirError::NotADirectory { path }
            | UserDirError::BadKey { path, .. }
            | UserDirError::Io { path, .. } => path,
        }
    }
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// The compiled-component cache: `$LOCKSTEP_CACHE_DIR` if set, else
/// `$XDG_CACHE_HOME/lockstep`, else `~/.cache/lockstep`. Never a place
/// inside a project.
pub fn user_cache_dir() -> Option<PathBuf> {
    env_dir(CACHE_DIR_ENV).or_else(|| {
        env_dir("XDG_CACHE_HOME")
            .or_else(|| env_dir("HOME").map(|h| h.join(".cache")))
            .map(|d| d.join("lockstep"))
    })
}

/// The user's lockstep config directory: `$LOCKSTEP_CONFIG_DIR` if set,
/// else `$XDG_CONFIG_HOME/lockstep`, else `~/.config/lockstep`.
pub fn user_config_dir() -> Option<PathBuf> {
    env_dir(CONFIG_DIR_ENV).or_else(|| {
        env_dir("XDG_CONFIG_HOME")
            .or_else(|| env_dir("HOME").map(|h| h.join(".config")))
            .map(|d| d.join("lockstep"))
    })
}

/// Check what `meta` describes belongs to us and is closed to writers
/// other than us.
pub fn check_owned_closed(path: &Path, meta: &std::fs::Metadata) -> Result<(), UserDirError> {
    let you = euid();
    if meta.uid() != you {
        return Err(UserDirError::NotOwned {
            path: path.to_path_buf(),
            owner: meta.uid(),
            you,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(UserDirError::OpenToOthers {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Create `dir` (mode `0700`, parents included) if it is missing, then
/// check it is a directory owned by us that group and others cannot write
/// to. With `follow`, a symbolic link naming the directory is followed (for
/// a directory the user named); without, a link is refused (for the
/// subdirectories lockstep itself creates).
pub fn ensure_private_dir(dir: &Path, follow: bool) -> Result<(), UserDirError> {
    let stat = |p: &Path| {
        if follow {
            std::fs::metadata(p)
        } else {
            std::fs::symlink_metadata(p)
        }
    };
    let meta = match stat(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(UserDirError::io(dir))?;
            stat(dir).map_err(UserDirError::io(dir))?
        }
        Err(e) => return Err(UserDirError::io(dir)(e)),
    };
    if !meta.is_dir() {
        return Err(UserDirError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    check_owned_closed(dir, &meta)
}

/// The cache key in `dir` (already checked with [`ensure_private_dir`]),
/// created on first use: random bytes written to a private temporary file
/// and linked into place, so concurrent first users agree on one key.
pub fn load_or_create_key(dir: &Path) -> Result<CacheKey, UserDirError> {
    let path = dir.join(KEY_FILE);
    match read_key(&path) {
        Err(UserDirError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            create_key(dir, &path)?;
            read_key(&path)
        }
        other => other,
    }
}

fn read_key(path: &Path) -> Result<CacheKey, UserDirError> {
    let mut file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(UserDirError::io(path))?;
    let meta = file.metadata().map_err(UserDirError::io(path))?;
    let you = euid();
    let mode = meta.mode() & 0o7777;
    if !meta.is_file() || meta.uid() != you || mode != 0o600 || meta.len() != KEY_LEN as u64 {
        return Err(UserDirError::BadKey {
            path: path.to_path_buf(),
            mode,
            owner: meta.uid(),
            you,
            len: meta.len(),
        });
    }
    let mut key = [0u8; KEY_LEN];
    file.read_exact(&mut key).map_err(UserDirError::io(path))?;
    Ok(CacheKey(key))
}

fn create_key(dir: &Path, path: &Path) -> Result<(), UserDirError> {
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let written = private_temp(dir, ".key", &key).and_then(|tmp| {
        // A link, unlike a rename, never replaces a key another process
        // created in the meantime: the first one wins and everyone reads it.
        let linked = match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        };
        let _ = std::fs::remove_file(&tmp);
        linked
    });
    written.map_err(UserDirError::io(path))
}

/// A new file in `dir` (named `PREFIX-<pid>-<random>`, created exclusively,
/// never through a symlink, mode `0600`) holding `bytes`, fsynced. Removed
/// again if writing it failed.
fn private_temp(dir: &Path, prefix: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    private_temp_file(dir, prefix, bytes, true).map(|(tmp, _)| tmp)
}

/// [`private_temp`], keeping the file open; fsynced when `sync`.
fn private_temp_file(
    dir: &Path,
    prefix: &str,
    bytes: &[u8],
    sync: bool,
) -> std::io::Result<(PathBuf, std::fs::File)> {
    let tmp = dir.join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let written = (|| {
        let mut file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        Ok(file)
    })();
    match written {
        Ok(file) => Ok((tmp, file)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Write `bytes` to `path` atomically with mode `0600`: a private
/// temporary file beside it, fsynced, renamed over the name.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = private_temp(dir, ".tmp", bytes)?;
    let renamed = std::fs::rename(&tmp, path);
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// How long [`write_private_file_settled`] waits for the file system's
/// clock to move on before it gives up.
const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// Like [`write_private_file`], returning the file's metadata as it is at
/// `path` once nothing more will change it and the file system's clock has
/// moved past its last status change (`ctime`). From then on, any write to
/// the file, `chmod`, `utime`, hard link, or replacement of the name gives
/// what is at `path` another inode or a later `ctime` than the one
/// returned — which is what lets a tag over these fields stand for the
/// bytes (see `cache.rs`).
///
/// The wait is needed because the kernel stamps files from a clock that
/// advances in ticks of a few milliseconds: a write in the same tick as the
/// rename would otherwise keep the `ctime`. It is over when a probe file
/// created or changed in the same directory afterwards gets a later `ctime`
/// than ours (at most a tick; bounded by [`SETTLE_LIMIT`], for a clock set
/// back). An error means the file is in place but must not be vouched for:
/// the clock did not move on, or the name was replaced meanwhile.
pub fn write_private_file_settled(path: &Path, bytes: &[u8]) -> std::io::Result<std::fs::Metadata> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let (tmp, file) = private_temp_file(dir, ".tmp", bytes, true)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The inode we wrote, after the rename (which changes its ctime on
    // most file systems), whatever is at `path` by now.
    let written = file.metadata()?;
    settle(dir, &written)?;
    let now = std::fs::symlink_metadata(path)?;
    if same_file_unchanged(&written, &now) {
        Ok(now)
    } else {
        Err(std::io::Error::other(format!(
            "{} was replaced or changed while it was being written",
            path.display()
        )))
    }
}

/// Whether `a` and `b` describe the same inode with the same status-change
/// time (nothing written, renamed over, linked or chmod-ed in between).
pub fn same_file_unchanged(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    (a.dev(), a.ino(), a.ctime(), a.ctime_nsec(), a.len())
        == (b.dev(), b.ino(), b.ctime(), b.ctime_nsec(), b.len())
}

/// Wait until a file changed in `dir` now gets a later `ctime` than
/// `written` had.
fn settle(dir: &Path, written: &std::fs::Metadata) -> std::io::Result<()> {
    let stamp = |m: &std::fs::Metadata| (m.ctime(), m.ctime_nsec());
    let (probe_path, probe) = private_temp_file(dir, ".settle", &[], false)?;
    let _ = std::fs::remove_file(&probe_path);
    let started = Instant::now();
    loop {
        if stamp(&probe.metadata()?) > stamp(written) {
            return Ok(());
        }
        if started.elapsed() > SETTLE_LIMIT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the file system's clock did not advance (was the clock set back?)",
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
        // Changing the mode (to what it is) sets the probe's ctime to now.
        probe.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_dir_is_created_closed_and_an_open_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir, true).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let err = ensure_private_dir(&dir, true).unwrap_err();
        assert!(
            matches!(err, UserDirError::OpenToOthers { mode: 0o775, .. }),
            "{err}"
        );
        // 0755 (a directory made with the usual umask) is fine.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir, true).unwrap();
        // A link where lockstep's own subdirectory belongs is refused.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(
            ensure_private_dir(&link, false),
            Err(UserDirError::NotADirectory { .. })
        ));
        ensure_private_dir(&link, true).unwrap();
    }

    #[test]
    fn the_key_is_created_once_and_refused_when_others_could_read_it() {
        let tmp = tempfile::tempdir().unwrap();
        let first = load_or_create_key(tmp.path()).unwrap();
        let again = load_or_create_key(tmp.path()).unwrap();
        assert_eq!(first.0, again.0);
        let path = tmp.path().join(KEY_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_key(tmp.path()).unwrap_err();
        assert!(
            matches!(err, UserDirError::BadKey { mode: 0o644, .. }),
            "{err}"
        );
        // A key planted through a symbolic link is not followed.
        std::fs::remove_file(&path).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::write(&elsewhere, [7u8; KEY_LEN]).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(load_or_create_key(tmp.path()).is_err());
    }
}
