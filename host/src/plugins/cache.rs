//! The on-disk cache of compiled components.
//!
//! Compiling a component is slow (seconds for a Python or JavaScript one);
//! loading its compiled form is a few milliseconds. Artifacts live at
//! `<dir>/<engine>/<content>.cwasm` where `<content>` is the SHA-256 of the
//! `.wasm` file and `<engine>` a hash of wasmtime's version and every engine
//! setting that affects compiled code (`Engine::precompile_compatibility_hash`),
//! so an artifact from another engine configuration is never even looked at.
//!
//! Each artifact starts with a magic string and an XXH3-128 checksum of the
//! rest (fast enough to verify a 40 MB artifact in a few milliseconds); a
//! truncated or corrupted file fails that check and is recompiled. So that a
//! hit does not have to hash the `.wasm` itself, a small index entry per
//! component path records its size, modification time and content hash. Writers
//! write a temporary file, fsync it and rename it into place, so several
//! processes (or hosts sharing the directory) can fill the cache at once and
//! readers only ever see whole artifacts. The directory is bounded: after
//! each insertion the least recently used artifacts are removed until the
//! total is under the limit (a hit refreshes the file's modification time).

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

const MAGIC: &[u8; 8] = b"LKSTCMP2";
const SUM: usize = 16;
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

    /// Load and verify an artifact; a bad one is removed.
    fn load(&self, engine: &Engine, artifact: &Path) -> Option<Component> {
        let bytes = std::fs::read(artifact).ok()?;
        let body = MAGIC.len() + SUM;
        let verified = bytes.len() > body
            && &bytes[..MAGIC.len()] == MAGIC
            && checksum(&bytes[body..]) == bytes[MAGIC.len()..body];
        if !verified {
            tracing::warn!("discarding corrupt cached component {}", artifact.display());
            let _ = std::fs::remove_file(artifact);
            return None;
        }
        match deserialize(engine, &bytes[body..]) {
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
                let _ = std::fs::remove_file(artifact);
                None
            }
        }
    }

    fn store(&self, component: &Component, artifact: &Path) -> anyhow::Result<()> {
        let payload = component.serialize().map_err(super::engine::wasm_error)?;
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(&checksum(&payload))?;
            file.write_all(&payload)?;
            file.sync_all()?;
            std::fs::rename(&tmp, artifact)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result?;
        self.evict();
        Ok(())
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
                total -= len;
            }
        }
    }
}

fn checksum(bytes: &[u8]) -> [u8; SUM] {
    xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes()
}

/// Turn verified cache bytes back into a component.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` trusts its input to be a component
    // serialized by a compatible wasmtime. These bytes come from our own
    // cache directory, were written by `Component::serialize` in `store`,
    // and passed the SHA-256 check above; the directory is keyed by the
    // engine's compatibility hash and wasmtime re-checks compatibility.
    unsafe { Component::deserialize(engine, bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_verifies_and_evicts() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("noop.wasm");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/noop.wasm"),
            &wasm,
        )
        .expect("run plugins/build.sh first");
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
        std::fs::write(&artifact, bytes).unwrap();
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
