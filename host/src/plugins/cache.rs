//! The on-disk cache of compiled components.
//!
//! Compiling a component is slow (seconds for a Python or JavaScript one);
//! loading its compiled form is a few milliseconds. Artifacts live at
//! `<dir>/<engine>/<content>.cwasm` where `<content>` is the SHA-256 of the
//! `.wasm` file and `<engine>` a hash of wasmtime's version and every engine
//! setting that affects compiled code (`Engine::precompile_compatibility_hash`),
//! so an artifact from another engine configuration is never even looked at.
//!
//! An artifact is exactly what `Component::serialize` produced, so that it can
//! be mapped into memory (`Component::deserialize_file`) instead of read and
//! copied: the code is used in place and a plugin's initial linear memory is
//! mapped copy-on-write straight from the file, which is what makes a 36 MB
//! Python or JavaScript component load in a few milliseconds. Beside it,
//! `<content>.sum` holds a magic string, the artifact's length and a CRC-32 of
//! its bytes; an artifact is only handed to wasmtime after its bytes matched
//! that checksum, so a truncated or corrupted file is recompiled, never
//! loaded. CRC-32 (carry-less multiplication, ~2 ms for 36 MB here) guards
//! against torn writes and storage corruption, which is what this check is
//! for; the directory is as trusted as the host's own binary, so it is not
//! a defence against someone who can write there.
//!
//! So that a hit does not have to hash the `.wasm` itself, a small index entry
//! per component path records its size, modification time and content hash.
//! Writers write a temporary file, fsync it and rename it into place (the
//! artifact first, then its checksum), so several processes (or hosts sharing
//! the directory) can fill the cache at once and readers only ever see whole
//! files. The directory is bounded: after each insertion the least recently
//! used artifacts are removed until the total is under the limit (a hit
//! refreshes the file's modification time).

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

const MAGIC: &[u8; 8] = b"LKSTCRC1";
const SUM: usize = 4;
/// Bytes of a `.sum` file: magic, artifact length (u64 LE), checksum.
const SUM_FILE: usize = MAGIC.len() + 8 + SUM;
/// Default bound of the cache directory, in bytes.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    /// Loaded from a verified artifact.
    Hit,
    /// Compiled, and the artifact stored.
    Compiled,
    /// Compiled; there is no cache (or storing failed).
    Uncached,
}

/// A bounded, integrity-checked directory of compiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    max_bytes: u64,
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

impl ComponentCache {
    /// A cache in `dir` (created on first store) bounded to `max_bytes`,
    /// for components compiled by `engine`.
    pub fn new(dir: &Path, engine: &Engine, max_bytes: u64) -> ComponentCache {
        ComponentCache {
            dir: dir.join(engine_key(engine)),
            max_bytes,
        }
    }

    /// The directory holding this engine's artifacts.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn artifact(&self, content: &str) -> PathBuf {
        self.dir.join(format!("{content}.cwasm"))
    }

    fn sum_file(artifact: &Path) -> PathBuf {
        artifact.with_extension("sum")
    }

    /// The index entry of the component at `path`: `size mtime-ns content`.
    fn index_entry(&self, path: &Path) -> PathBuf {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let key = Sha256::digest(canonical.to_string_lossy().as_bytes());
        self.dir.join("index").join(hex::encode(&key[..16]))
    }

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

    /// The content hash of `path` from the index, if its size and
    /// modification time still match.
    fn indexed_content(&self, path: &Path) -> Option<String> {
        let entry = std::fs::read_to_string(self.index_entry(path)).ok()?;
        let (stamp, content) = entry.trim().rsplit_once(' ')?;
        (Some(stamp.to_string()) == Self::stamp(path)).then(|| content.to_string())
    }

    fn write_index(&self, path: &Path, stamp: &str, content: &str) {
        let entry = self.index_entry(path);
        let dir = entry.parent().unwrap_or(&self.dir);
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let ok = std::fs::create_dir_all(dir).is_ok()
            && std::fs::write(&tmp, format!("{stamp} {content}\n")).is_ok()
            && std::fs::rename(&tmp, &entry).is_ok();
        if !ok {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// The compiled component for the `.wasm` at `path`: from the cache if a
    /// verified artifact is there, else compiled and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        path: &Path,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        if let Some(content) = self.indexed_content(path) {
            if let Some(component) = self.load(engine, &self.artifact(&content)) {
                return Ok((component, CacheOutcome::Hit));
            }
        }
        let stamp = Self::stamp(path);
        let wasm = std::fs::read(path)?;
        let content = hex::encode(Sha256::digest(&wasm));
        if let Some(stamp) = &stamp {
            self.write_index(path, stamp, &content);
        }
        let artifact = self.artifact(&content);
        if let Some(component) = self.load(engine, &artifact) {
            return Ok((component, CacheOutcome::Hit));
        }
        let started = Instant::now();
        let component = Component::new(engine, &wasm).map_err(super::engine::wasm_error)?;
        tracing::debug!(path = %path.display(), elapsed = ?started.elapsed(), "compiled component");
        let outcome = match self.store(&component, &artifact) {
            Ok(()) => CacheOutcome::Compiled,
            Err(e) => {
                tracing::warn!("could not cache the compiled `{}`: {e}", path.display());
                CacheOutcome::Uncached
            }
        };
        Ok((component, outcome))
    }

    /// Verify an artifact against its checksum file and map it; a bad or
    /// incompatible one is left for the next store to replace.
    fn load(&self, engine: &Engine, artifact: &Path) -> Option<Component> {
        let sum = std::fs::read(Self::sum_file(artifact)).ok()?;
        let verified = sum.len() == SUM_FILE
            && &sum[..MAGIC.len()] == MAGIC
            && file_sum(artifact).is_some_and(|(len, checksum)| {
                sum[MAGIC.len()..MAGIC.len() + 8] == len.to_le_bytes()
                    && sum[MAGIC.len() + 8..] == checksum
            });
        if !verified {
            if artifact.exists() {
                tracing::warn!("discarding corrupt cached component {}", artifact.display());
            }
            return None;
        }
        match deserialize_file(engine, artifact) {
            Ok(component) => {
                if let Ok(file) = std::fs::File::options().append(true).open(artifact) {
                    let _ = file.set_modified(SystemTime::now());
                }
                Some(component)
            }
            Err(e) => {
                tracing::warn!(
                    "discarding incompatible cached component {}: {e}",
                    artifact.display()
                );
                None
            }
        }
    }

    fn store(&self, component: &Component, artifact: &Path) -> anyhow::Result<()> {
        let payload = component.serialize().map_err(super::engine::wasm_error)?;
        std::fs::create_dir_all(&self.dir)?;
        let mut sum = Vec::with_capacity(SUM_FILE);
        sum.extend_from_slice(MAGIC);
        sum.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        sum.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        // The artifact goes in first: a reader that finds the new checksum
        // then also finds the bytes it describes.
        self.write_atomically(artifact, &payload)?;
        self.write_atomically(&Self::sum_file(artifact), &sum)?;
        self.evict();
        Ok(())
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Remove least recently used artifacts until the total fits.
    fn evict(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
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
                let _ = std::fs::remove_file(Self::sum_file(&path));
                total -= len;
            }
        }
    }
}

/// The length and CRC-32 of a file, computed through a read-only mapping
/// (no copy of the 40 MB into our memory).
#[allow(unsafe_code)]
fn file_sum(path: &Path) -> Option<(u64, [u8; SUM])> {
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len == 0 {
        return Some((0, crc32fast::hash(&[]).to_le_bytes()));
    }
    // SAFETY: a read-only private mapping of a cache artifact. Artifacts are
    // never modified or truncated in place (writers rename a new file over
    // the name; the mapping keeps the old inode), the same guarantee
    // `Component::deserialize_file` relies on for the mapping it runs code
    // from.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.ok()?;
    Some((len, crc32(&map).to_le_bytes()))
}

/// CRC-32 of `bytes`; a large input is split across the available cores
/// and the partial checksums combined.
fn crc32(bytes: &[u8]) -> u32 {
    const PARALLEL_ABOVE: usize = 4 << 20;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(1);
    if bytes.len() < PARALLEL_ABOVE || threads == 1 {
        return crc32fast::hash(bytes);
    }
    let chunk = bytes.len().div_ceil(threads);
    let parts: Vec<(u32, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = bytes
            .chunks(chunk)
            .map(|part| scope.spawn(move || (crc32fast::hash(part), part.len() as u64)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 0)))
            .collect()
    });
    let mut whole = crc32fast::Hasher::new();
    for (sum, len) in parts {
        whole.combine(&crc32fast::Hasher::new_with_initial_len(sum, len));
    }
    whole.finalize()
}

/// Map a verified artifact and turn it back into a component.
#[allow(unsafe_code)]
fn deserialize_file(engine: &Engine, artifact: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize_file` trusts the file to be a component
    // serialized by a compatible wasmtime and not to change while mapped.
    // Artifacts come from our own cache directory, were written by
    // `Component::serialize` in `store`, and matched their checksum just
    // before; the directory is keyed by the engine's compatibility hash and
    // wasmtime re-checks compatibility. Files there are never modified in
    // place: a writer renames a whole new file over the name (the old inode,
    // which a mapping keeps, is untouched), and eviction only unlinks.
    unsafe { Component::deserialize_file(engine, artifact) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_checksum_equals_the_whole() {
        let bytes: Vec<u8> = (0..(9u32 << 20) + 12345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(crc32(&bytes), crc32fast::hash(&bytes));
        assert_eq!(crc32(&bytes[..100]), crc32fast::hash(&bytes[..100]));
    }

    #[test]
    fn hits_verifies_and_evicts() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("noop.wasm");
        std::fs::copy(lockstep_test_artifacts::NOOP, &wasm).unwrap();
        let cache = ComponentCache::new(&dir.path().join("cache"), &engine, DEFAULT_CACHE_BYTES);
        assert_eq!(
            cache.load_or_compile(&engine, &wasm).unwrap().1,
            CacheOutcome::Compiled
        );
        assert_eq!(
            cache.load_or_compile(&engine, &wasm).unwrap().1,
            CacheOutcome::Hit
        );
        // Corrupt the artifact: it is discarded and recompiled.
        let artifact = cache.artifact(&hex::encode(Sha256::digest(std::fs::read(&wasm).unwrap())));
        let mut bytes = std::fs::read(&artifact).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&artifact, &bytes).unwrap();
        assert_eq!(
            cache.load_or_compile(&engine, &wasm).unwrap().1,
            CacheOutcome::Compiled
        );
        // A truncated artifact, or one without its checksum file, too.
        std::fs::write(&artifact, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(
            cache.load_or_compile(&engine, &wasm).unwrap().1,
            CacheOutcome::Compiled
        );
        std::fs::remove_file(ComponentCache::sum_file(&artifact)).unwrap();
        assert_eq!(
            cache.load_or_compile(&engine, &wasm).unwrap().1,
            CacheOutcome::Compiled
        );
        assert_eq!(
            cache.load_or_compile(&engine, &wasm).unwrap().1,
            CacheOutcome::Hit
        );
        // Another engine configuration uses another directory.
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let other = Engine::new(&config).unwrap();
        let other_cache =
            ComponentCache::new(&dir.path().join("cache"), &other, DEFAULT_CACHE_BYTES);
        assert_ne!(other_cache.dir(), cache.dir());
        assert_eq!(
            other_cache.load_or_compile(&other, &wasm).unwrap().1,
            CacheOutcome::Compiled
        );
        // A bound smaller than one artifact keeps the directory from growing.
        let tiny = ComponentCache::new(&dir.path().join("tiny"), &engine, 1);
        tiny.load_or_compile(&engine, &wasm).unwrap();
        let artifacts = std::fs::read_dir(tiny.dir()).unwrap().flatten();
        assert_eq!(
            artifacts
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count(),
            0
        );
        // A changed file is noticed through its size and modification time.
        std::fs::write(&wasm, b"not a component").unwrap();
        assert!(cache.load_or_compile(&engine, &wasm).is_err());
    }
}
