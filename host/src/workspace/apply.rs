//! Writing a changeset to the project: the old tree or the new tree,
//! nothing in between that the next command does not finish.
//!
//! 1. [`prepare`] validates the whole changeset against the disk before
//!    anything is written: every path again (path rules, no symlink, every
//!    parent a directory, every target a regular file or absent), no path
//!    inside another, and every target's hash against the one recorded at
//!    Execute (any difference: [`ApplyError::Drift`], nothing written).
//!    Then it stages every new file: a temp file with a random name,
//!    created `O_EXCL | O_NOFOLLOW` in the handle of its target's
//!    directory, written and fsynced. A failure removes the temp files and
//!    the directories staging created: the old tree.
//! 2. The lifecycle journals the intent in the database.
//! 3. [`commit`] renames each temp file over its target within the
//!    directory handle and unlinks deleted files, then fsyncs every
//!    directory touched. A failure before the first rename removes the
//!    temp files (the old tree); after it, the rest is rolled forward at
//!    once and, if that fails too, by the next command from the journal.
//!
//! [`roll_forward`] finishes an interrupted apply: it validates every path
//! read back from the database again, skips files that already hold their
//! new contents, and writes the rest the same way. It is idempotent.
//! Nothing here follows a symlink: see [`super::tree`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{self, Write};
use std::sync::Arc;

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions};

use super::changeset::{content_hash, tree_error, validate_path, ChangeError, ChangeLimits};
use super::path::shown;
use super::tree::{lstat, split, sync_dir, Created, ProjectTree, TreeError};
use crate::model::{ChangeKind, ChangeRecord};

mod faults;
pub(crate) use faults::Faults;
#[cfg(feature = "fault-injection")]
pub use faults::{
    FAULT_DELAY_ENV, FAULT_FAIL_COMMIT_ENV, FAULT_FAIL_STAGE_ENV, FAULT_STOP_AFTER_ENV,
};

/// Temp files are named this followed by 16 random hex digits.
pub const TEMP_PREFIX: &str = ".lockstep-tmp-";
/// Most directory handles kept open at once while writing.
const OPEN_DIRS: usize = 128;

/// A target that changed since Execute read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Drift {
    /// Project-relative path.
    pub path: String,
    /// Hash recorded at Execute (`None` = absent).
    pub expected: Option<String>,
    /// Hash now (`None` = absent).
    pub found: Option<String>,
}

/// Why an apply did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Targets changed underneath; nothing was written.
    #[error("{} file(s) changed since the plan was executed; nothing was written: {}", .0.len(), .0.iter().map(|d| d.path.as_str()).collect::<Vec<_>>().join(", "))]
    Drift(Vec<Drift>),
    /// A path is no longer safe (a symlink or a directory appeared, a
    /// path lies inside another); nothing was written.
    #[error("{0}; nothing was written")]
    Path(#[from] ChangeError),
    /// Staging failed, or the first rename did: the temp files were
    /// removed and nothing was written.
    #[error("writing `{path}` failed: {source}; nothing was written")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Some files were renamed and then one failed, and finishing at once
    /// failed too. The journal keeps the apply: the plan's next command
    /// (`lockstep plan retry`) rolls it forward.
    #[error("apply stopped after {done} of {total} file(s): {source}; run `lockstep plan retry` on the plan to finish it (the rest is written from the journal)")]
    Partial {
        /// Files renamed or deleted before the failure.
        done: usize,
        /// Files in the changeset.
        total: usize,
        /// Why finishing failed.
        #[source]
        source: Box<ApplyError>,
    },
}

impl ApplyError {
    fn io(path: &str, source: io::Error) -> Self {
        ApplyError::Io {
            path: shown(path),
            source,
        }
    }
}

/// Directory handles by project-relative path, opened without following
/// symlinks and kept for a while so that many files in one directory
/// cost one walk.
struct Dirs<'t> {
    tree: &'t ProjectTree,
    open: HashMap<String, Dir>,
}

impl<'t> Dirs<'t> {
    fn new(tree: &'t ProjectTree) -> Self {
        Dirs {
            tree,
            open: HashMap::new(),
        }
    }

    /// The handle of `dirs` (on the way to `rel`); created if missing and
    /// `created` is given; `None` if missing otherwise.
    fn get(
        &mut self,
        dirs: &str,
        rel: &str,
        created: Option<&mut Created>,
    ) -> Result<Option<&Dir>, TreeError> {
        if !self.open.contains_key(dirs) {
            let Some(dir) = self.tree.walk(dirs, rel, created)? else {
                return Ok(None);
            };
            if self.open.len() >= OPEN_DIRS {
                self.open.clear();
            }
            self.open.insert(dirs.to_string(), dir);
        }
        Ok(self.open.get(dirs))
    }
}

/// What commit does for one entry.
#[derive(Debug)]
enum Step {
    /// Rename the temp file `temp` over the target.
    Rename { temp: String },
    /// Unlink the target.
    Delete,
    /// The target already holds its new contents (roll-forward).
    Skip,
}

/// Every change of a changeset validated and staged, ready to [`commit`].
/// Dropped without committing, it removes its temp files and the
/// directories it created.
#[derive(Debug)]
pub struct Staged {
    tree: Arc<ProjectTree>,
    /// (normalised path, what to do) in changeset order.
    steps: Vec<(String, Step)>,
    created: Created,
    /// How many steps were carried out.
    done: usize,
    /// How many of them changed the project (renames, unlinks).
    changed: usize,
    faults: Faults,
}

impl Staged {
    /// Remove the temp files not yet renamed and, if nothing was changed,
    /// the directories staging created (innermost first, only if empty).
    pub fn discard(mut self) {
        self.clean_up();
    }

    fn clean_up(&mut self) {
        let mut dirs = Dirs::new(&self.tree);
        for (path, step) in self.steps.iter().skip(self.done) {
            if let Step::Rename { temp } = step {
                if let Ok(Some(dir)) = dirs.get(split(path).0, path, None) {
                    let _ = dir.remove_file(temp);
                }
            }
        }
        self.steps.clear();
        if self.changed == 0 {
            for created in self.created.dirs.drain(..).rev() {
                if let Ok(Some((dir, name))) = self.tree.parent(&created, None) {
                    let _ = dir.remove_dir(name);
                }
            }
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.clean_up();
    }
}

/// The changeset's paths, normalised, with no path inside another.
fn validate_all(changes: &[ChangeRecord]) -> Result<Vec<String>, ChangeError> {
    let paths = changes
        .iter()
        .map(|c| validate_path(&c.path))
        .collect::<Result<Vec<_>, _>>()?;
    let set: HashSet<&str> = paths.iter().map(String::as_str).collect();
    for path in &paths {
        for (i, _) in path.match_indices('/') {
            if set.contains(&path[..i]) {
                return Err(ChangeError::Nested {
                    path: shown(path),
                    other: shown(&path[..i]),
                });
            }
        }
    }
    Ok(paths)
}

/// Largest file read to compare contents: no recorded original and no new
/// file can be larger.
fn read_cap(limits: &ChangeLimits) -> u64 {
    limits.max_original_bytes.max(limits.max_file_bytes)
}

/// Check every change's path and recorded hash against the disk; nothing
/// is written.
pub fn check(
    tree: &ProjectTree,
    changes: &[ChangeRecord],
    limits: &ChangeLimits,
) -> Result<(), ApplyError> {
    let paths = validate_all(changes)?;
    let mut drift = Vec::new();
    for (c, path) in changes.iter().zip(&paths) {
        let found = tree
            .read_file(path, limits.max_original_bytes)
            .map_err(|e| tree_error(path, e))?
            .map(|bytes| content_hash(&bytes));
        if found != c.base_hash {
            drift.push(Drift {
                path: path.clone(),
                expected: c.base_hash.clone(),
                found,
            });
        }
    }
    if drift.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Drift(drift))
    }
}

/// Validate the whole changeset, check it for drift, and stage every new
/// file; nothing in the project is replaced yet.
pub fn prepare(
    tree: Arc<ProjectTree>,
    changes: &[ChangeRecord],
    limits: &ChangeLimits,
) -> Result<Staged, ApplyError> {
    prepare_with(tree, changes, limits, Faults::from_env())
}

pub(crate) fn prepare_with(
    tree: Arc<ProjectTree>,
    changes: &[ChangeRecord],
    limits: &ChangeLimits,
    faults: Faults,
) -> Result<Staged, ApplyError> {
    check(&tree, changes, limits)?;
    stage(tree, changes, |_| Ok(false), faults)
}

/// Stage `changes` (validated): a temp file for every write that
/// `already_done` does not skip.
fn stage(
    tree: Arc<ProjectTree>,
    changes: &[ChangeRecord],
    mut already_done: impl FnMut(&str) -> Result<bool, ApplyError>,
    faults: Faults,
) -> Result<Staged, ApplyError> {
    let paths = validate_all(changes)?;
    let mut staged = Staged {
        tree: tree.clone(),
        steps: Vec::with_capacity(changes.len()),
        created: Created::default(),
        done: 0,
        changed: 0,
        faults,
    };
    remove_stale_temps(&tree, &paths);
    let mut dirs = Dirs::new(&tree);
    for (k, (c, path)) in changes.iter().zip(paths).enumerate() {
        let step = match c.kind {
            ChangeKind::Delete => Step::Delete,
            ChangeKind::Write if already_done(&path)? => Step::Skip,
            ChangeKind::Write => {
                faults.stage(&path, k + 1)?;
                let (parent, name) = split(&path);
                let dir = dirs
                    .get(parent, &path, Some(&mut staged.created))
                    .map_err(|e| tree_error(&path, e))?
                    .ok_or_else(|| ApplyError::io(&path, io::ErrorKind::NotFound.into()))?;
                let contents = c.contents.as_deref().unwrap_or_default();
                let temp = write_temp(dir, name, contents).map_err(|e| ApplyError::io(&path, e))?;
                Step::Rename { temp }
            }
        };
        staged.steps.push((path, step));
    }
    Ok(staged)
}

/// Write `contents` to a new temp file in `dir` (beside `name`, whose
/// permissions it takes) and fsync it; returns the temp file's name. The
/// name is random and the file is created `O_EXCL | O_NOFOLLOW`, so
/// nothing planted in the tree can stand in for it.
fn write_temp(dir: &Dir, name: &str, contents: &[u8]) -> io::Result<String> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .create_new(true)
        .follow(FollowSymlinks::No);
    let (temp, file) = loop {
        let temp = format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>());
        match dir.open_with(&temp, &options) {
            Ok(file) => break (temp, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let written = (|| {
        let mut file = file;
        file.write_all(contents)?;
        if let Some(meta) = lstat(dir, name)? {
            if meta.is_file() {
                // Keep the permissions (e.g. the executable bit) of the file replaced.
                file.set_permissions(meta.permissions())?;
            }
        }
        file.sync_all()
    })();
    match written {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = dir.remove_file(&temp);
            Err(e)
        }
    }
}

/// Remove temp files an earlier, interrupted apply left in the directories
/// of `paths` (never a path of the changeset itself).
fn remove_stale_temps(tree: &ProjectTree, paths: &[String]) {
    let targets: HashSet<&str> = paths.iter().map(String::as_str).collect();
    let parents: BTreeSet<&str> = paths.iter().map(|p| split(p).0).collect();
    for parent in parents {
        let Ok(Some(dir)) = tree.open_dir(parent) else {
            continue;
        };
        let Ok(entries) = dir.entries() else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_temp = name.len() == TEMP_PREFIX.len() + 16
                && name
                    .strip_prefix(TEMP_PREFIX)
                    .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
            let path = if parent.is_empty() {
                name.clone()
            } else {
                format!("{parent}/{name}")
            };
            if is_temp && !targets.contains(path.as_str()) {
                // `unlinkat`: removes a symlink itself, never its target.
                let _ = dir.remove_file(&name);
            }
        }
    }
}

/// Carry out `staged`: rename every temp file over its target and unlink
/// every deleted file, then fsync the directories. If a step fails after
/// the first rename, the rest is rolled forward at once from `changes`.
/// Returns how many files were written or deleted.
pub fn commit(
    mut staged: Staged,
    changes: &[ChangeRecord],
    limits: &ChangeLimits,
) -> Result<usize, ApplyError> {
    let total = staged.steps.len();
    match carry_out(&mut staged) {
        Ok(written) => Ok(written),
        Err(e) if staged.changed == 0 => Err(e),
        Err(e) => {
            let done = staged.changed;
            let tree = staged.tree.clone();
            drop(staged);
            tracing::warn!("apply stopped after {done} of {total} file(s) ({e}); rolling forward");
            roll_forward(&tree, changes, limits)
                .map(|rest| done + rest)
                .map_err(|source| ApplyError::Partial {
                    done,
                    total,
                    source: Box::new(source),
                })
        }
    }
}

fn carry_out(staged: &mut Staged) -> Result<usize, ApplyError> {
    let faults = staged.faults;
    let tree = staged.tree.clone();
    let mut dirs = Dirs::new(&tree);
    // Directories whose entries changed: the parents of those staging
    // created, and of every file renamed or deleted.
    let mut touched: BTreeSet<String> = staged
        .created
        .dirs
        .iter()
        .map(|d| split(d).0.to_string())
        .collect();
    let mut written = 0;
    for k in 0..staged.steps.len() {
        let (path, step) = &staged.steps[k];
        let changed = carry_out_step(&mut dirs, path, step, k + 1, faults)?;
        staged.done = k + 1;
        if changed {
            staged.changed += 1;
            touched.insert(split(path).0.to_string());
            written += 1;
            faults.after_change(written);
        }
    }
    for parent in &touched {
        if let Some(dir) = dirs.get(parent, parent, None).ok().flatten() {
            sync_dir(dir).map_err(|e| ApplyError::io(parent, e))?;
        }
    }
    Ok(written)
}

/// Carry out `step` on `path`, the `k`-th file (1-based): rename its temp
/// file over it or unlink it. Returns whether the project changed (a file
/// already gone or skipped changes nothing).
fn carry_out_step(
    dirs: &mut Dirs<'_>,
    path: &str,
    step: &Step,
    k: usize,
    faults: Faults,
) -> Result<bool, ApplyError> {
    if matches!(step, Step::Skip) {
        return Ok(false);
    }
    faults.before_change();
    let (parent, name) = split(path);
    let dir = dirs
        .get(parent, path, None)
        .map_err(|e| tree_error(path, e))?;
    match (step, dir) {
        (Step::Rename { temp }, Some(dir)) => {
            faults.rename(path, k)?;
            dir.rename(temp, dir, name)
                .map_err(|e| ApplyError::io(path, e))?;
            Ok(true)
        }
        (Step::Rename { .. }, None) => Err(ApplyError::io(path, io::ErrorKind::NotFound.into())),
        (Step::Delete, Some(dir)) => match dir.remove_file(name) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ApplyError::io(path, e)),
        },
        (Step::Delete, None) | (Step::Skip, _) => Ok(false),
    }
}

/// Finish an interrupted apply: validate every path again (they come back
/// from the database), skip the files that already hold their new
/// contents, and write and delete the rest without following any symlink.
/// Idempotent. Returns how many files were written or deleted.
pub fn roll_forward(
    tree: &Arc<ProjectTree>,
    changes: &[ChangeRecord],
    limits: &ChangeLimits,
) -> Result<usize, ApplyError> {
    roll_forward_with(tree, changes, limits, Faults::from_env())
}

pub(crate) fn roll_forward_with(
    tree: &Arc<ProjectTree>,
    changes: &[ChangeRecord],
    limits: &ChangeLimits,
    faults: Faults,
) -> Result<usize, ApplyError> {
    let cap = read_cap(limits);
    let new_hash: HashMap<&str, Option<&str>> = changes
        .iter()
        .map(|c| (c.path.as_str(), c.new_hash.as_deref()))
        .collect();
    let mut staged = stage(
        tree.clone(),
        changes,
        |path| match tree.read_file(path, cap) {
            Ok(Some(bytes)) => {
                let expected = new_hash.get(path).copied().flatten();
                Ok(expected == Some(content_hash(&bytes).as_str()))
            }
            Ok(None) | Err(TreeError::TooLarge { .. }) => Ok(false),
            Err(e) => Err(tree_error(path, e).into()),
        },
        faults,
    )?;
    carry_out(&mut staged)
}

#[cfg(test)]
mod tests;
