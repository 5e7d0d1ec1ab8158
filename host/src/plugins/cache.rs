//! The on-disk cache of compiled components.
//!
//! Compiling a component is slow (seconds for a Python or JavaScript one);
//! loading its compiled form is a few milliseconds. But a compiled artifact
//! is native code that wasmtime maps and runs without re-checking it, so
//! the cache is only ever used from a place nobody else can write, and only
//! artifacts this user's own lockstep wrote are believed:
//!
//! - The directory is the user's (`$LOCKSTEP_CACHE_DIR`, else
//!   `$XDG_CACHE_HOME/lockstep`, else `~/.cache/lockstep`; never a project),
//!   created `0700`. Before every load it and its engine subdirectory must
//!   belong to the effective user and be closed to writers in group and
//!   others ([`super::userdir`]); if not, components are compiled in memory
//!   and a warning says once why and how to fix it.
//! - Every artifact carries a tag: BLAKE3 in keyed mode under a per-user
//!   secret (`key`, 32 random bytes, mode `0600`, in the cache directory)
//!   over the engine key, the content hash the artifact was compiled from,
//!   its length and the identity of the file our writer put there: device,
//!   inode and status-change time (`ctime`). No unprivileged process can
//!   set a `ctime`, and any write to the file, `chmod`, `utime` or hard link
//!   changes it; a copy, a restore or a file renamed over the name is
//!   another inode. So the tag stands for the bytes without reading them:
//!   a load costs two `stat`s instead of a hash over 36 MB. The writer
//!   computes the tag after its rename, once the file system's clock has
//!   moved past the file's `ctime` ([`userdir::write_private_file_settled`]),
//!   and nothing of ours changes the artifact afterwards. A copied, planted,
//!   replaced or edited artifact, one tagged under another key, and a whole
//!   cache directory copied or restored from a backup (key and tags
//!   included) are recompiled, never loaded.
//!
//! Artifacts live at `<dir>/<engine>/<content>.cwasm` with the tag in
//! `<content>.tag`, where `<content>` is the SHA-256 of the `.wasm` file and
//! `<engine>` a hash of wasmtime's version and every engine setting that
//! affects compiled code (`Engine::precompile_compatibility_hash`), so an
//! artifact from another engine configuration is never even looked at. An
//! artifact is exactly what `Component::serialize` produced, mapped in place
//! (`Component::deserialize_file`) so that a 36 MB Python or JavaScript
//! component loads in a few milliseconds.
//!
//! So that a hit does not have to hash the `.wasm` itself, a small index
//! entry per component path records its size, modification time and content
//! hash, tagged like an artifact; an entry is only believed when its tag
//! matches and its content hash is 64 hex digits (no path is ever built from
//! text read from a file). Writers write a private temporary file, fsync it
//! and rename it into place (the artifact first, then its tag), so several
//! processes can fill the cache at once and readers only ever see whole
//! files. The directory is bounded: after each insertion the least recently
//! used artifacts are removed until the total is under the limit (a hit
//! refreshes the modification time of the artifact's tag file, never the
//! artifact's own times, which would change its `ctime`).

use std::hash::Hasher;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use super::error::{CompileError, WasmError};
use super::userdir::{self, CacheKey, UserDirError};

/// Version 2: the tag covers the file's identity, not its bytes (version 1
/// tags, over every byte, are not believed: their artifacts are recompiled
/// once).
const MAGIC: &[u8; 8] = b"LKSTTAG2";
const TAG: usize = blake3::OUT_LEN;
/// Bytes of a `.tag` file: magic, artifact length (u64 LE), tag.
const TAG_FILE: usize = MAGIC.len() + 8 + TAG;
/// Domain separation of the two things the key authenticates.
const ARTIFACT_DOMAIN: &[u8] = b"lockstep compiled component v2\0";
const INDEX_DOMAIN: &[u8] = b"lockstep cache index v1\0";
/// Default bound of the cache directory, in bytes.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    /// Loaded from an artifact whose tag checked out.
    Hit,
    /// Compiled, and the artifact stored.
    Compiled,
    /// Compiled; there is no cache, it cannot be trusted, or storing failed.
    Uncached,
}

/// Told when a component is about to be compiled — never when its
/// compiled form is loaded from the cache — with the `.wasm` file and
/// whether the result will be kept in the cache. Compiling a Python or
/// JavaScript component takes seconds; a front end shows a progress line.
#[derive(Clone)]
pub struct CompileHook(Arc<CompileFn>);

/// What a [`CompileHook`] calls: `f(path, cached)`.
type CompileFn = dyn Fn(&Path, bool) + Send + Sync;

impl CompileHook {
    /// A hook calling `f(path, cached)`.
    pub fn new(f: impl Fn(&Path, bool) + Send + Sync + 'static) -> CompileHook {
        CompileHook(Arc::new(f))
    }

    /// Tell the hook that `path` is being compiled.
    pub fn compiling(&self, path: &Path, cached: bool) {
        (self.0)(path, cached)
    }
}

impl std::fmt::Debug for CompileHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompileHook(..)")
    }
}

/// Two hooks are equal when they are the same hook.
impl PartialEq for CompileHook {
    fn eq(&self, other: &CompileHook) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CompileHook {}

/// A bounded, authenticated directory of compiled components.
#[derive(Debug)]
pub struct ComponentCache {
    root: PathBuf,
    engine: String,
    dir: PathBuf,
    max_bytes: u64,
    key: OnceLock<CacheKey>,
    warned: AtomicBool,
    hook: Option<CompileHook>,
}

struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// A stable key of everything in `engine` that affects compiled code.
pub fn engine_key(engine: &Engine) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex::encode(&hasher.0.finalize()[..12])
}

/// Whether `s` is a lowercase hex SHA-256 (the only text from a cache file
/// that ever becomes part of a path).
fn is_content_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl ComponentCache {
    /// A cache in `dir` (created `0700` on first use) bounded to
    /// `max_bytes`, for components compiled by `engine`.
    pub fn new(dir: &Path, engine: &Engine, max_bytes: u64) -> ComponentCache {
        let key = engine_key(engine);
        ComponentCache {
            root: dir.to_path_buf(),
            dir: dir.join(&key),
            engine: key,
            max_bytes,
            key: OnceLock::new(),
            warned: AtomicBool::new(false),
            hook: None,
        }
    }

    /// The same cache, telling `hook` about every compilation.
    pub fn with_hook(mut self, hook: Option<CompileHook>) -> ComponentCache {
        self.hook = hook;
        self
    }

    fn compiling(&self, path: &Path, cached: bool) {
        if let Some(hook) = &self.hook {
            hook.compiling(path, cached);
        }
    }

    /// The directory holding this engine's artifacts.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn artifact(&self, content: &str) -> PathBuf {
        self.dir.join(format!("{content}.cwasm"))
    }

    fn tag_file(artifact: &Path) -> PathBuf {
        artifact.with_extension("tag")
    }

    /// Check the directories and read the key: `Err` means the cache must
    /// not be used. Run before every load (a few `stat`s); the key is read
    /// once.
    pub fn open(&self) -> Result<CacheKey, UserDirError> {
        userdir::ensure_private_dir(&self.root, true)?;
        let key = match self.key.get() {
            Some(key) => *key,
            None => {
                let key = userdir::load_or_create_key(&self.root)?;
                *self.key.get_or_init(|| key)
            }
        };
        userdir::ensure_private_dir(&self.dir, false)?;
        userdir::ensure_private_dir(&self.dir.join("index"), false)?;
        Ok(key)
    }

    fn warn_once(&self, problem: &UserDirError) {
        if self.warned.swap(true, Ordering::Relaxed) {
            return;
        }
        let fix = match problem {
            UserDirError::BadKey { path, .. } => format!(
                "remove {} and lockstep writes a new one (every component is compiled once more)",
                path.display()
            ),
            UserDirError::NotOwned { path, .. } => format!(
                "make it yours (`chown $(id -u) {}`) and closed (`chmod 700 {}`)",
                path.display(),
                path.display()
            ),
            other => format!("`chmod 700 {}`", other.path().display()),
        };
        tracing::warn!(
            "not using the compiled-component cache {}: {problem}. Someone else could have put compiled \
             native code there, so plugins are compiled in memory on every start instead (seconds for a \
             Python or JavaScript plugin). To fix: {fix}, or set {} to a directory of your own.",
            self.root.display(),
            userdir::CACHE_DIR_ENV
        );
    }

    /// The compiled component for the `.wasm` at `path`: from the cache if
    /// an artifact with a good tag is there, else compiled and stored. With
    /// `expected`, the component must have that SHA-256 (one the caller
    /// already checked, e.g. against the user's trust record): the index is
    /// not consulted and different bytes are an error.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        path: &Path,
        expected: Option<&str>,
    ) -> Result<(Component, CacheOutcome), CompileError> {
        let key = match self.open() {
            Ok(key) => key,
            Err(problem) => {
                self.warn_once(&problem);
                self.compiling(path, false);
                return Ok((
                    compile_uncached(engine, path, expected)?,
                    CacheOutcome::Uncached,
                ));
            }
        };
        let known = match expected {
            Some(content) => Some(content.to_string()),
            None => self.indexed_content(&key, path),
        };
        if let Some(content) = known.as_deref().filter(|c| is_content_hash(c)) {
            if let Some(component) = self.load(engine, &key, content) {
                return Ok((component, CacheOutcome::Hit));
            }
        }
        let stamp = stamp(path);
        let wasm = read_wasm(path)?;
        let content = verified_content(path, &wasm, expected)?;
        if let Some(stamp) = &stamp {
            self.write_index(&key, path, stamp, &content);
        }
        if known.as_deref() != Some(content.as_str()) {
            if let Some(component) = self.load(engine, &key, &content) {
                return Ok((component, CacheOutcome::Hit));
            }
        }
        self.compiling(path, true);
        let started = Instant::now();
        let component = Component::new(engine, &wasm).map_err(WasmError::from)?;
        tracing::debug!(path = %path.display(), elapsed = ?started.elapsed(), "compiled component");
        let outcome = match self.store(&key, &component, &content) {
            Ok(()) => CacheOutcome::Compiled,
            Err(e) => {
                tracing::warn!("could not cache the compiled `{}`: {e}", path.display());
                CacheOutcome::Uncached
            }
        };
        Ok((component, outcome))
    }

    /// The index entry of the component at `path` (a name derived from its
    /// canonical path, never from file text).
    fn index_entry(&self, path: &Path) -> (PathBuf, Vec<u8>) {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let bytes = canonical.as_os_str().as_encoded_bytes().to_vec();
        let name = hex::encode(&Sha256::digest(&bytes)[..16]);
        (self.dir.join("index").join(name), bytes)
    }

    fn index_tag(&self, key: &CacheKey, canonical: &[u8], stamp: &str, content: &str) -> String {
        let mut mac = blake3::Hasher::new_keyed(&key.0);
        mac.update(INDEX_DOMAIN)
            .update(self.engine.as_bytes())
            .update(b"\0")
            .update(canonical)
            .update(b"\0")
            .update(stamp.as_bytes())
            .update(b"\0")
            .update(content.as_bytes());
        mac.finalize().to_hex().to_string()
    }

    /// The content hash of `path` from the index, if the entry's tag
    /// checks out and the file's size and modification time still match.
    fn indexed_content(&self, key: &CacheKey, path: &Path) -> Option<String> {
        let (entry, canonical) = self.index_entry(path);
        let mut text = String::new();
        std::fs::File::open(entry)
            .ok()?
            .take(512)
            .read_to_string(&mut text)
            .ok()?;
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        let [len, mtime, content, tag] = fields[..] else {
            return None;
        };
        let stamp = format!("{len} {mtime}");
        let expected = self.index_tag(key, &canonical, &stamp, content);
        let tag = blake3::Hash::from_hex(tag).ok()?;
        let good = blake3::Hash::from_hex(&expected).ok()? == tag; // constant time
        (good && is_content_hash(content) && Some(&stamp) == self::stamp(path).as_ref())
            .then(|| content.to_string())
    }

    fn write_index(&self, key: &CacheKey, path: &Path, stamp: &str, content: &str) {
        let (entry, canonical) = self.index_entry(path);
        let tag = self.index_tag(key, &canonical, stamp, content);
        let _ =
            userdir::write_private_file(&entry, format!("{stamp} {content} {tag}\n").as_bytes());
    }

    /// The tag of an artifact compiled from `content` that is the file
    /// `identity` describes.
    fn artifact_tag(&self, key: &CacheKey, content: &str, identity: &Identity) -> blake3::Hash {
        let mut mac = blake3::Hasher::new_keyed(&key.0);
        mac.update(ARTIFACT_DOMAIN)
            .update(self.engine.as_bytes())
            .update(b"\0")
            .update(content.as_bytes())
            .update(&identity.len.to_le_bytes())
            .update(&identity.dev.to_le_bytes())
            .update(&identity.ino.to_le_bytes())
            .update(&identity.ctime.to_le_bytes())
            .update(&identity.ctime_nsec.to_le_bytes());
        mac.finalize()
    }

    /// Check an artifact's tag against the file now at its name and map
    /// it; anything else is left for the next store to replace.
    fn load(&self, engine: &Engine, key: &CacheKey, content: &str) -> Option<Component> {
        let artifact = self.artifact(content);
        let tag_file = Self::tag_file(&artifact);
        let recorded = std::fs::read(&tag_file).ok()?;
        let before = Identity::of(&artifact);
        let verified = recorded.len() == TAG_FILE
            && &recorded[..MAGIC.len()] == MAGIC
            && before.is_some_and(|identity| {
                recorded[MAGIC.len()..MAGIC.len() + 8] == identity.len.to_le_bytes()
                    // `blake3::Hash` compares in constant time.
                    && blake3::Hash::from_bytes(
                        recorded[MAGIC.len() + 8..].try_into().unwrap_or([0; TAG]),
                    ) == self.artifact_tag(key, content, &identity)
            });
        if !verified {
            if artifact.exists() {
                tracing::warn!(
                    "discarding cached component {}: its tag does not match (changed, copied or restored \
                     since it was written, or not written by your lockstep)",
                    artifact.display()
                );
            }
            return None;
        }
        let component = match deserialize_file(engine, &artifact) {
            Ok(component) => component,
            Err(e) => {
                tracing::warn!(
                    "discarding incompatible cached component {}: {e}",
                    artifact.display()
                );
                return None;
            }
        };
        // wasmtime opened the name again: the file it mapped is the one
        // checked only if the name still holds that inode, unchanged (a
        // rename over the name, or back, or a write in between, changes
        // the inode or the ctime).
        if Identity::of(&artifact) != before {
            tracing::warn!(
                "discarding cached component {}: it was replaced or changed while being loaded",
                artifact.display()
            );
            return None;
        }
        // Least recently used is counted on the tag file: touching the
        // artifact would change its ctime, and with it the tag.
        if let Ok(file) = std::fs::File::options().append(true).open(&tag_file) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(component)
    }

    fn store(
        &self,
        key: &CacheKey,
        component: &Component,
        content: &str,
    ) -> Result<(), CompileError> {
        let payload = component.serialize().map_err(WasmError::from)?;
        // The artifact goes in first, and its tag is computed from the file
        // in place, after the rename and once its ctime is settled; nothing
        // changes the artifact afterwards. A reader that finds the new tag
        // then also finds the file it describes.
        let artifact = self.artifact(content);
        let written = userdir::write_private_file_settled(&artifact, &payload)
            .map_err(CompileError::Write)?;
        let identity = Identity::from_metadata(&written).ok_or_else(|| {
            CompileError::Write(std::io::Error::other("the artifact is not a regular file"))
        })?;
        let mut tag = Vec::with_capacity(TAG_FILE);
        tag.extend_from_slice(MAGIC);
        tag.extend_from_slice(&identity.len.to_le_bytes());
        tag.extend_from_slice(self.artifact_tag(key, content, &identity).as_bytes());
        userdir::write_private_file(&Self::tag_file(&artifact), &tag)
            .map_err(CompileError::Write)?;
        self.evict();
        Ok(())
    }

    /// Remove least recently used artifacts until the total fits.
    fn evict(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        // Last used: the tag file's modification time (a hit refreshes
        // it), else the artifact's (written, never used).
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                let used = std::fs::metadata(Self::tag_file(&e.path()))
                    .and_then(|tag| tag.modified())
                    .or_else(|_| meta.modified())
                    .ok()?;
                Some((used, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        if total <= self.max_bytes {
            return;
        }
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                let _ = std::fs::remove_file(Self::tag_file(&path));
                // The checksum of the cache format before tags.
                let _ = std::fs::remove_file(path.with_extension("sum"));
                total -= len;
            }
        }
    }
}

/// `size mtime-ns` of a file.
fn stamp(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("{} {mtime}", meta.len()))
}

/// The SHA-256 of `wasm`, which must be `expected` when one is given.
fn verified_content(
    path: &Path,
    wasm: &[u8],
    expected: Option<&str>,
) -> Result<String, CompileError> {
    let content = hex::encode(Sha256::digest(wasm));
    match expected {
        Some(expected) if expected != content => Err(CompileError::Changed {
            path: path.to_path_buf(),
            now: content,
            checked: expected.to_string(),
        }),
        _ => Ok(content),
    }
}

/// The bytes of the component file at `path`.
fn read_wasm(path: &Path) -> Result<Vec<u8>, CompileError> {
    std::fs::read(path).map_err(|source| CompileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Compile without a cache (none configured, or one that cannot be trusted).
pub fn compile_uncached(
    engine: &Engine,
    path: &Path,
    expected: Option<&str>,
) -> Result<Component, CompileError> {
    let wasm = read_wasm(path)?;
    verified_content(path, &wasm, expected)?;
    Ok(Component::new(engine, &wasm).map_err(WasmError::from)?)
}

/// What a file cannot keep through a copy, a restore, a replacement or a
/// write: the fields an artifact's tag covers besides its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    len: u64,
    dev: u64,
    ino: u64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Identity {
    /// The identity of the regular file at `path` (not through a symlink).
    fn of(path: &Path) -> Option<Identity> {
        Identity::from_metadata(&std::fs::symlink_metadata(path).ok()?)
    }

    fn from_metadata(meta: &std::fs::Metadata) -> Option<Identity> {
        use std::os::unix::fs::MetadataExt;
        meta.file_type().is_file().then(|| Identity {
            len: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        })
    }
}

/// Map an artifact whose tag checked out and turn it back into a component.
#[allow(unsafe_code)]
fn deserialize_file(engine: &Engine, artifact: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize_file` trusts the file to be a component
    // serialized by a compatible wasmtime and not to change while mapped.
    // The artifact is in a directory owned by us and closed to group and
    // others (checked before this load), and the file at its name matched a
    // tag under our secret key just before: the tag covers the device,
    // inode and ctime our own lockstep's `store` saw after renaming the
    // output of `Component::serialize` into place, and any write, copy or
    // replacement since would have changed one of them (the caller checks
    // them again after this mapping). The directory is keyed by the
    // engine's compatibility hash and wasmtime re-checks compatibility.
    // Files there are never modified in place: a writer renames a whole new
    // file over the name (the old inode, which a mapping keeps, is
    // untouched), and eviction only unlinks.
    unsafe { Component::deserialize_file(engine, artifact) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A copy of a fixture component in `dir`.
    fn component(dir: &Path, name: &str) -> PathBuf {
        let wasm = dir.join(format!("{name}.wasm"));
        std::fs::copy(lockstep_test_artifacts::component(name), &wasm).unwrap();
        wasm
    }

    fn content(wasm: &Path) -> String {
        hex::encode(Sha256::digest(std::fs::read(wasm).unwrap()))
    }

    fn outcome(cache: &ComponentCache, engine: &Engine, wasm: &Path) -> CacheOutcome {
        cache.load_or_compile(engine, wasm, None).unwrap().1
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn hits_verifies_and_evicts() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let wasm = component(dir.path(), "noop");
        let cache = ComponentCache::new(&dir.path().join("cache"), &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
        // Everything written is private to the user.
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        let artifact = cache.artifact(&content(&wasm));
        assert_eq!(mode(&dir.path().join("cache")), 0o700);
        assert_eq!(mode(cache.dir()), 0o700);
        assert_eq!(mode(&artifact), 0o600);
        assert_eq!(
            mode(&dir.path().join("cache").join(userdir::KEY_FILE)),
            0o600
        );
        // A hit refreshes the tag file's modification time, never the
        // artifact's times (that would change its ctime, and its tag).
        let written = Identity::of(&artifact).unwrap();
        let tag_file = ComponentCache::tag_file(&artifact);
        let long_ago = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
        let artifact_mtime = std::fs::metadata(&artifact).unwrap().modified().unwrap();
        std::fs::File::options()
            .append(true)
            .open(&tag_file)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
        assert_eq!(Identity::of(&artifact), Some(written));
        assert_eq!(
            std::fs::metadata(&artifact).unwrap().modified().unwrap(),
            artifact_mtime
        );
        assert!(std::fs::metadata(&tag_file).unwrap().modified().unwrap() > long_ago);
        // A truncated artifact, or one without its tag, is recompiled.
        let bytes = std::fs::read(&artifact).unwrap();
        std::fs::write(&artifact, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        std::fs::remove_file(ComponentCache::tag_file(&artifact)).unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
        // Another engine configuration uses another directory.
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let other = Engine::new(&config).unwrap();
        let other_cache =
            ComponentCache::new(&dir.path().join("cache"), &other, DEFAULT_CACHE_BYTES);
        assert_ne!(other_cache.dir(), cache.dir());
        assert_eq!(outcome(&other_cache, &other, &wasm), CacheOutcome::Compiled);
        // A bound smaller than one artifact keeps the directory from growing.
        let tiny = ComponentCache::new(&dir.path().join("tiny"), &engine, 1);
        tiny.load_or_compile(&engine, &wasm, None).unwrap();
        let artifacts = std::fs::read_dir(tiny.dir()).unwrap().flatten();
        assert_eq!(
            artifacts
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count(),
            0
        );
        // A changed file is noticed through its size and modification time.
        std::fs::write(&wasm, b"not a component").unwrap();
        assert!(cache.load_or_compile(&engine, &wasm, None).is_err());
    }

    #[test]
    fn the_hook_hears_of_compilations_not_of_hits() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let wasm = component(dir.path(), "noop");
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let hook = {
            let heard = heard.clone();
            CompileHook::new(move |path, cached| {
                heard.lock().unwrap().push((path.to_path_buf(), cached));
            })
        };
        let cache = ComponentCache::new(&dir.path().join("cache"), &engine, DEFAULT_CACHE_BYTES)
            .with_hook(Some(hook.clone()));
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
        assert_eq!(*heard.lock().unwrap(), [(wasm.clone(), true)]);
        // A cache that cannot be trusted compiles every time, uncached.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let untrusted =
            ComponentCache::new(&open, &engine, DEFAULT_CACHE_BYTES).with_hook(Some(hook));
        assert_eq!(outcome(&untrusted, &engine, &wasm), CacheOutcome::Uncached);
        assert_eq!(heard.lock().unwrap()[1], (wasm, false));
    }

    /// An attacker without the key copies a real artifact (and every file
    /// beside it) from another cache — under its own name, and under the
    /// name of another component, with an index entry pointing there.
    #[test]
    fn a_copied_artifact_without_our_tag_is_recompiled() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let noop = component(dir.path(), "noop");
        let header = component(dir.path(), "license-header");
        let theirs = ComponentCache::new(&dir.path().join("theirs"), &engine, DEFAULT_CACHE_BYTES);
        let ours = ComponentCache::new(&dir.path().join("ours"), &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(outcome(&theirs, &engine, &noop), CacheOutcome::Compiled);
        ours.open().unwrap();
        let (noop_sum, header_sum) = (content(&noop), content(&header));
        let planted = std::fs::read(theirs.artifact(&noop_sum)).unwrap();
        for target in [&noop_sum, &header_sum] {
            for entry in std::fs::read_dir(theirs.dir()).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(ext) = name.strip_prefix(&format!("{noop_sum}.")) {
                    std::fs::copy(entry.path(), ours.dir().join(format!("{target}.{ext}")))
                        .unwrap();
                }
            }
        }
        // Their index entry for the license-header path, naming noop.
        let (entry, canonical) = ours.index_entry(&header);
        let stamp = stamp(&header).unwrap();
        let foreign = theirs.index_tag(&theirs.open().unwrap(), &canonical, &stamp, &noop_sum);
        std::fs::write(&entry, format!("{stamp} {noop_sum} {foreign}\n")).unwrap();

        assert_eq!(outcome(&ours, &engine, &noop), CacheOutcome::Compiled);
        assert_eq!(outcome(&ours, &engine, &header), CacheOutcome::Compiled);
        // License-header's own compiled code replaced the planted one.
        assert_ne!(std::fs::read(ours.artifact(&header_sum)).unwrap(), planted);
        // From now on our own artifacts are hits.
        assert_eq!(outcome(&ours, &engine, &header), CacheOutcome::Hit);
        assert_eq!(outcome(&ours, &engine, &noop), CacheOutcome::Hit);
    }

    #[test]
    fn a_tampered_artifact_is_refused() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let wasm = component(dir.path(), "noop");
        let cache = ComponentCache::new(&dir.path().join("cache"), &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        let artifact = cache.artifact(&content(&wasm));
        let good = std::fs::read(&artifact).unwrap();
        // One byte changed, same length, and every checksum anyone can
        // compute made to match (the CRC-32 file of the format before tags).
        let mut bytes = good.clone();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(&artifact, &bytes).unwrap();
        let mut sum = b"LKSTCRC1".to_vec();
        sum.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        sum.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
        std::fs::write(artifact.with_extension("sum"), sum).unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(std::fs::read(&artifact).unwrap(), good);
        // A changed tag is refused the same way.
        let tag_file = ComponentCache::tag_file(&artifact);
        let mut tag = std::fs::read(&tag_file).unwrap();
        let last = tag.len() - 1;
        tag[last] ^= 1;
        std::fs::write(&tag_file, tag).unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
        // An index entry whose text is not a content hash builds no path.
        let (entry, canonical) = cache.index_entry(&wasm);
        let stamp = stamp(&wasm).unwrap();
        let key = cache.open().unwrap();
        let evil = "../../../../tmp/evil";
        let tag = cache.index_tag(&key, &canonical, &stamp, evil);
        std::fs::write(&entry, format!("{stamp} {evil} {tag}\n")).unwrap();
        assert_eq!(cache.indexed_content(&key, &wasm), None);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
    }

    /// One byte of the artifact changed in place, through the same inode,
    /// at the same length, with its modification time put back: the ctime
    /// moved, so the tag no longer matches.
    #[test]
    fn a_byte_flipped_in_place_is_refused() {
        use std::io::{Seek, SeekFrom, Write};
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let wasm = component(dir.path(), "noop");
        let cache = ComponentCache::new(&dir.path().join("cache"), &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        let artifact = cache.artifact(&content(&wasm));
        let good = std::fs::read(&artifact).unwrap();
        let written = Identity::of(&artifact).unwrap();
        let mtime = std::fs::metadata(&artifact).unwrap().modified().unwrap();
        // Right after the store: the writer waited for the clock to move on,
        // so even a write within the same clock tick is noticed.
        let middle = good.len() as u64 / 2;
        let mut file = std::fs::File::options()
            .write(true)
            .open(&artifact)
            .unwrap();
        file.seek(SeekFrom::Start(middle)).unwrap();
        file.write_all(&[good[middle as usize] ^ 0x55]).unwrap();
        file.set_modified(mtime).unwrap();
        drop(file);
        let flipped = Identity::of(&artifact).unwrap();
        assert_eq!((flipped.ino, flipped.len), (written.ino, written.len));
        assert_ne!(flipped, written);
        assert_eq!(
            std::fs::metadata(&artifact).unwrap().modified().unwrap(),
            mtime
        );
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(std::fs::read(&artifact).unwrap(), good);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
    }

    /// The artifact's name given to another file: a byte-for-byte copy of
    /// the artifact itself, and another component's artifact with its own
    /// good tag, each renamed over the name with the tag file left (or put)
    /// beside it. Another inode is another file: refused.
    #[test]
    fn an_artifact_replaced_by_another_file_is_refused() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let noop = component(dir.path(), "noop");
        let header = component(dir.path(), "license-header");
        let cache = ComponentCache::new(&dir.path().join("cache"), &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(outcome(&cache, &engine, &noop), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &header), CacheOutcome::Compiled);
        let artifact = cache.artifact(&content(&noop));
        let good = std::fs::read(&artifact).unwrap();
        let mtime = std::fs::metadata(&artifact).unwrap().modified().unwrap();

        // The same bytes, same length and modification time, another inode.
        let copy = cache.dir().join("copy");
        std::fs::write(&copy, &good).unwrap();
        chmod(&copy, 0o600);
        std::fs::File::options()
            .append(true)
            .open(&copy)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(&copy, &artifact).unwrap();
        assert_eq!(outcome(&cache, &engine, &noop), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &noop), CacheOutcome::Hit);

        // License-header's artifact and tag, both written by this cache,
        // moved to noop's names.
        let theirs = cache.artifact(&content(&header));
        std::fs::rename(
            ComponentCache::tag_file(&theirs),
            ComponentCache::tag_file(&artifact),
        )
        .unwrap();
        std::fs::rename(&theirs, &artifact).unwrap();
        assert_eq!(outcome(&cache, &engine, &noop), CacheOutcome::Compiled);
        assert_eq!(std::fs::read(&artifact).unwrap(), good);
    }

    /// A whole cache directory copied with its key, tags and times (as a
    /// backup restore, `cp -a` or a sync would) is recompiled once, never
    /// loaded unverified; the same directory renamed in place keeps its
    /// files and still hits.
    #[test]
    fn a_copied_cache_dir_is_recompiled_not_loaded() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let wasm = component(dir.path(), "noop");
        let original = dir.path().join("cache");
        let cache = ComponentCache::new(&original, &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        let restored = dir.path().join("restored");
        copy_tree(&original, &restored);
        let copy = ComponentCache::new(&restored, &engine, DEFAULT_CACHE_BYTES);
        // The key came along: only the files' identity tells them apart.
        assert_eq!(copy.open().unwrap().0, cache.open().unwrap().0);
        let artifact = copy.artifact(&content(&wasm));
        assert_eq!(
            std::fs::read(&artifact).unwrap(),
            std::fs::read(cache.artifact(&content(&wasm))).unwrap()
        );
        assert_eq!(outcome(&copy, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(outcome(&copy, &engine, &wasm), CacheOutcome::Hit);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
        // Renamed on the same file system: the same inodes, untouched.
        let moved = dir.path().join("moved");
        std::fs::rename(&original, &moved).unwrap();
        let moved = ComponentCache::new(&moved, &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(outcome(&moved, &engine, &wasm), CacheOutcome::Hit);
    }

    /// Copy `from` to `to` recursively, keeping modes and modification
    /// times.
    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target = to.join(entry.file_name());
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
                std::fs::File::options()
                    .append(true)
                    .open(&target)
                    .unwrap()
                    .set_modified(meta.modified().unwrap())
                    .unwrap();
            }
            chmod(&target, meta.mode() & 0o7777);
        }
    }

    /// Least recently used is read from the tag files: of two artifacts, the
    /// one not loaded since goes first when a third does not fit.
    #[test]
    fn eviction_follows_hits_recorded_on_the_tag_files() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let [noop, header, replace] =
            ["noop", "license-header", "replace"].map(|n| component(dir.path(), n));
        let cache = ComponentCache::new(&root, &engine, DEFAULT_CACHE_BYTES);
        for wasm in [&noop, &header, &replace] {
            assert_eq!(outcome(&cache, &engine, wasm), CacheOutcome::Compiled);
        }
        let size = |wasm: &Path| {
            std::fs::metadata(cache.artifact(&content(wasm)))
                .unwrap()
                .len()
        };
        let (noop_len, header_len, replace_len) = (size(&noop), size(&header), size(&replace));
        std::fs::remove_file(cache.artifact(&content(&replace))).unwrap();
        // Noop was written first but loaded last.
        let long_ago = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
        for wasm in [&noop, &header] {
            std::fs::File::options()
                .append(true)
                .open(ComponentCache::tag_file(&cache.artifact(&content(wasm))))
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        assert_eq!(outcome(&cache, &engine, &noop), CacheOutcome::Hit);
        let bound = noop_len + replace_len.max(header_len);
        let tight = ComponentCache::new(&root, &engine, bound);
        assert_eq!(outcome(&tight, &engine, &replace), CacheOutcome::Compiled);
        assert!(cache.artifact(&content(&noop)).exists());
        assert!(!cache.artifact(&content(&header)).exists());
        assert!(cache.artifact(&content(&replace)).exists());
    }

    #[test]
    fn a_cache_dir_open_to_others_is_not_used() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let wasm = component(dir.path(), "noop");
        let root = dir.path().join("cache");
        let cache = ComponentCache::new(&root, &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
        // Writable by others: even a good artifact there is not loaded, and
        // nothing is written.
        chmod(&root, 0o777);
        let artifact = cache.artifact(&content(&wasm));
        let before = std::fs::metadata(&artifact).unwrap().modified().unwrap();
        let fresh = ComponentCache::new(&root, &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(outcome(&fresh, &engine, &wasm), CacheOutcome::Uncached);
        assert!(matches!(
            fresh.open(),
            Err(UserDirError::OpenToOthers { .. })
        ));
        assert_eq!(
            std::fs::metadata(&artifact).unwrap().modified().unwrap(),
            before
        );
        // The engine's subdirectory is checked too.
        chmod(&root, 0o700);
        chmod(cache.dir(), 0o770);
        assert_eq!(outcome(&fresh, &engine, &wasm), CacheOutcome::Uncached);
        chmod(cache.dir(), 0o700);
        assert_eq!(outcome(&fresh, &engine, &wasm), CacheOutcome::Hit);
        // A key file others could read is refused.
        let key = root.join(userdir::KEY_FILE);
        chmod(&key, 0o644);
        let other = ComponentCache::new(&root, &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(outcome(&other, &engine, &wasm), CacheOutcome::Uncached);
        chmod(&key, 0o600);
        // Owned by someone else (only root can arrange that).
        if userdir::euid() == 0 {
            std::os::unix::fs::chown(&root, Some(65534), None).unwrap();
            let other = ComponentCache::new(&root, &engine, DEFAULT_CACHE_BYTES);
            assert_eq!(outcome(&other, &engine, &wasm), CacheOutcome::Uncached);
            assert!(matches!(
                other.open(),
                Err(UserDirError::NotOwned { owner: 65534, .. })
            ));
        }
    }
}
