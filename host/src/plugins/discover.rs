//! Finding plugins on disk: every `NAME.wasm` in a plugin directory with a
//! `NAME.toml` manifest beside it. Directories are searched in order and the
//! first plugin of a name wins; later ones are reported as shadowed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::manifest::{self, Manifest, ManifestError};

/// Environment variable with extra plugin directories (colon-separated).
pub const PLUGIN_PATH_ENV: &str = "LOCKSTEP_PLUGIN_PATH";

/// Parsed manifests by path, parsed again only when a file's size,
/// modification time or inode changes: a plan looks its plugins up several
/// times, and each lookup looks at the plugin directories afresh (so a
/// plugin added, removed or edited is seen at once) without re-reading
/// every manifest.
///
/// It also keeps each plugin directory's list of components while the
/// directory is unchanged (see [`ManifestCache::components`]), so that a
/// lookup costs a `stat` of each directory and of each manifest rather than
/// listing the directories.
#[derive(Debug, Default)]
pub struct ManifestCache {
    parsed: Mutex<HashMap<PathBuf, (Stamp, Parsed)>>,
    listed: Mutex<Listings>,
}

/// Device, inode, modification and change time of a plugin directory.
type DirStamp = (u64, u64, i64, i64, i64, i64);

/// Each listed directory's components, with the stamp it had.
type Listings = HashMap<PathBuf, (DirStamp, Arc<[PathBuf]>)>;

/// How old a directory's modification time must be before a listing made
/// under it is reused: the kernel stamps directories from a clock that
/// advances in ticks, so an entry added in the same tick as the listing
/// could leave the time unchanged. A listing of a directory changed within
/// this time is never reused.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(1);

/// Size, modification time and inode of a manifest file.
type Stamp = (u64, Option<SystemTime>, u64);
type Parsed = Result<Manifest, ManifestError>;

impl ManifestCache {
    fn read(&self, path: &Path, meta: &std::fs::Metadata) -> Result<Manifest, ManifestError> {
        use std::os::unix::fs::MetadataExt;
        let stamp = (meta.len(), meta.modified().ok(), meta.ino());
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, manifest)) = parsed.get(path) {
            if *seen == stamp {
                return manifest.clone();
            }
        }
        let manifest = manifest::read(path);
        parsed.insert(path.to_path_buf(), (stamp, manifest.clone()));
        manifest
    }

    /// The `*.wasm` files in `dir`, sorted; `None` when it cannot be
    /// listed. Listed again whenever the directory's stamp changed (an
    /// entry added, removed or renamed changes its modification time) or
    /// its modification time is younger than [`SETTLED`].
    fn components(&self, dir: &Path) -> Option<Arc<[PathBuf]>> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir).ok().filter(|m| m.is_dir())?;
        let stamp = (
            meta.dev(),
            meta.ino(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        );
        let settled = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age >= SETTLED);
        if let Some((seen, wasm)) = self.lock_listed().get(dir) {
            if settled && *seen == stamp {
                return Some(wasm.clone());
            }
        }
        // Listed without holding the lock: other lookups go on meanwhile.
        let mut wasm: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
            .collect();
        wasm.sort();
        let wasm: Arc<[PathBuf]> = wasm.into();
        self.lock_listed()
            .insert(dir.to_path_buf(), (stamp, wasm.clone()));
        Some(wasm)
    }

    fn lock_listed(&self) -> std::sync::MutexGuard<'_, Listings> {
        self.listed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One component found in a plugin directory.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The component.
    pub wasm: PathBuf,
    /// Its manifest (`NAME.toml` beside it).
    pub manifest_path: PathBuf,
    /// The parsed manifest, or why it could not be read.
    pub manifest: Result<Manifest, ManifestError>,
    /// The earlier component of the same name that hides this one.
    pub shadowed_by: Option<PathBuf>,
}

impl Entry {
    /// The manifest's name, or the file stem when the manifest is broken.
    pub fn name(&self) -> String {
        match &self.manifest {
            Ok(m) => m.name.clone(),
            Err(_) => self
                .wasm
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

/// Every `*.wasm` in `dirs`, in search order (sorted by file name within a
/// directory). Missing directories are skipped.
pub fn discover(dirs: &[PathBuf], cache: &ManifestCache) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for dir in dirs {
        let Some(wasm) = cache.components(dir) else {
            continue;
        };
        for path in wasm.iter().cloned() {
            let manifest_path = path.with_extension("toml");
            let manifest = match std::fs::metadata(&manifest_path) {
                Ok(meta) if meta.is_file() => cache.read(&manifest_path, &meta),
                _ => Err(ManifestError::whole_file(
                    &manifest_path,
                    format!(
                        "missing: every plugin component needs a manifest beside it ({})",
                        file(&manifest_path)
                    ),
                )),
            };
            let mut entry = Entry {
                wasm: path,
                manifest_path,
                manifest,
                shadowed_by: None,
            };
            let name = entry.name();
            entry.shadowed_by = entries
                .iter()
                .find(|e| e.shadowed_by.is_none() && e.name() == name)
                .map(|e| e.wasm.clone());
            entries.push(entry);
        }
    }
    entries
}

fn file(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The entry that answers to `name`: the first one, broken or not.
pub fn find<'a>(entries: &'a [Entry], name: &str) -> Option<&'a Entry> {
    entries
        .iter()
        .find(|e| e.shadowed_by.is_none() && e.name() == name)
}

/// A message for an unknown plugin name, listing what was found and where.
pub fn unknown(name: &str, dirs: &[PathBuf], entries: &[Entry]) -> String {
    let searched = if dirs.is_empty() {
        "no plugin directories are configured".to_string()
    } else {
        format!(
            "searched {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let found: Vec<String> = entries
        .iter()
        .filter(|e| e.shadowed_by.is_none())
        .map(|e| match &e.manifest {
            Ok(m) => format!("{} {} ({})", m.name, m.version, m.kind),
            Err(_) => format!("{} (broken manifest)", e.name()),
        })
        .collect();
    if found.is_empty() {
        format!(
            "no plugin named `{name}`: no plugins were found ({searched}); put NAME.wasm and NAME.toml in one of them, \
             or name the directory that has them with --plugin-dir DIR (or in {})",
            PLUGIN_PATH_ENV
        )
    } else {
        format!(
            "no plugin named `{name}` ({searched}); found: {}",
            found.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str =
        "name = \"NAME\"\nversion = \"0.1.0\"\nkind = \"plugin\"\napi = \"0.1.0\"\n";

    pub(super) fn plugin(dir: &Path, file: &str, name: &str) {
        std::fs::write(dir.join(format!("{file}.wasm")), b"\0asm").unwrap();
        std::fs::write(
            dir.join(format!("{file}.toml")),
            MANIFEST.replace("NAME", name),
        )
        .unwrap();
    }

    #[test]
    fn first_directory_wins_and_problems_are_kept() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        plugin(a.path(), "one", "one");
        plugin(b.path(), "one", "one");
        plugin(b.path(), "two", "two");
        std::fs::write(b.path().join("lonely.wasm"), b"\0asm").unwrap();
        let dirs = vec![
            a.path().to_path_buf(),
            b.path().to_path_buf(),
            a.path().join("missing"),
        ];
        let entries = discover(&dirs, &ManifestCache::default());
        assert_eq!(entries.len(), 4);
        let one = find(&entries, "one").unwrap();
        assert!(one.wasm.starts_with(a.path()));
        assert!(entries
            .iter()
            .any(|e| e.shadowed_by.as_deref() == Some(one.wasm.as_path())));
        let lonely = find(&entries, "lonely").unwrap();
        assert!(lonely
            .manifest
            .as_ref()
            .unwrap_err()
            .message
            .contains("missing"));
        let msg = unknown("three", &dirs, &entries);
        assert!(
            msg.contains("found: one 0.1.0 (plugin), lonely (broken manifest), two 0.1.0 (plugin)"),
            "{msg}"
        );
        assert!(unknown("x", &[], &[]).contains("no plugins were found"));
    }

    #[test]
    fn no_plugins_found_names_both_ways_to_add_a_directory() {
        let msg = unknown("x", &[], &[]);
        assert!(msg.contains("--plugin-dir DIR"), "{msg}");
        assert!(msg.contains("LOCKSTEP_PLUGIN_PATH"), "{msg}");
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    /// A plugin called `name` in `dir`.
    fn add(dir: &Path, name: &str) {
        super::tests::plugin(dir, name, name);
    }

    /// A plugin directory holding the plugin `one`, and a fresh cache.
    fn one_plugin() -> (tempfile::TempDir, Vec<PathBuf>, ManifestCache) {
        let dir = tempfile::tempdir().unwrap();
        add(dir.path(), "one");
        let dirs = vec![dir.path().to_path_buf()];
        (dir, dirs, ManifestCache::default())
    }

    /// Set `dir`'s modification time.
    fn set_modified(dir: &Path, at: SystemTime) {
        std::fs::File::open(dir).unwrap().set_modified(at).unwrap();
    }

    /// Make `dir`'s modification time an hour old, so that a listing of it
    /// is reused.
    fn settle(dir: &Path) {
        set_modified(
            dir,
            SystemTime::now() - std::time::Duration::from_secs(3600),
        );
    }

    #[test]
    fn a_plugin_added_or_removed_in_a_listed_directory_is_seen_at_the_next_lookup() {
        let (dir, dirs, cache) = one_plugin();
        settle(dir.path());
        assert_eq!(discover(&dirs, &cache).len(), 1);
        // Listed while settled: the next lookup reuses the listing unless
        // the directory changed.
        assert_eq!(discover(&dirs, &cache).len(), 1);
        add(dir.path(), "two");
        assert!(find(&discover(&dirs, &cache), "two").is_some());
        settle(dir.path());
        assert_eq!(discover(&dirs, &cache).len(), 2);
        std::fs::remove_file(dir.path().join("one.wasm")).unwrap();
        let entries = discover(&dirs, &cache);
        assert!(find(&entries, "one").is_none());
        assert_eq!(entries.len(), 1);
        // A component renamed over another, in a settled directory.
        settle(dir.path());
        discover(&dirs, &cache);
        std::fs::rename(dir.path().join("two.wasm"), dir.path().join("three.wasm")).unwrap();
        std::fs::rename(dir.path().join("two.toml"), dir.path().join("three.toml")).unwrap();
        let entries = discover(&dirs, &cache);
        assert_eq!(entries.len(), 1);
        assert!(entries[0].wasm.ends_with("three.wasm"));
    }

    #[test]
    fn a_listing_is_not_reused_when_only_the_modification_time_looks_the_same() {
        let (dir, dirs, cache) = one_plugin();
        assert_eq!(discover(&dirs, &cache).len(), 1);
        // Put the directory's modification time back to what the listing
        // saw, as an entry made within the same clock tick would leave it:
        // the change time still moved, and the directory was changed less
        // than a second ago anyway.
        let meta = std::fs::metadata(dir.path()).unwrap();
        add(dir.path(), "two");
        set_modified(dir.path(), meta.modified().unwrap());
        assert_eq!(discover(&dirs, &cache).len(), 2);
    }

    #[test]
    fn an_edited_or_removed_manifest_is_seen_at_the_next_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        let cache = ManifestCache::default();
        std::fs::write(dir.path().join("p.wasm"), b"\0asm").unwrap();
        let manifest = dir.path().join("p.toml");
        std::fs::write(
            &manifest,
            "name = \"first\"\nversion = \"0.1.0\"\nkind = \"plugin\"\napi = \"0.1.0\"\n",
        )
        .unwrap();
        assert!(find(&discover(&dirs, &cache), "first").is_some());
        // Rewritten in place (same inode), another length.
        std::fs::write(
            &manifest,
            "name = \"second-name\"\nversion = \"0.1.0\"\nkind = \"plugin\"\napi = \"0.1.0\"\n",
        )
        .unwrap();
        let entries = discover(&dirs, &cache);
        assert!(find(&entries, "first").is_none());
        assert!(find(&entries, "second-name").is_some());
        // Broken, then gone: each reported, nothing stale served.
        std::fs::write(&manifest, "name = ").unwrap();
        assert!(discover(&dirs, &cache)[0].manifest.is_err());
        std::fs::remove_file(&manifest).unwrap();
        let entries = discover(&dirs, &cache);
        assert!(entries[0]
            .manifest
            .as_ref()
            .unwrap_err()
            .message
            .contains("missing"));
    }
}
