//! [`Workspace`]: the project on disk as async code sees it.
//!
//! Everything the workspace does to a project is blocking system calls:
//! resolving and opening its directory, reading and hashing originals,
//! listing directories for spellings, the drift check, staging (write and
//! fsync), renames, directory fsyncs and roll-forward. Every async method
//! here runs that work on tokio's blocking pool (`spawn_blocking`), so a
//! runtime thread — which also runs the lease heartbeats and every other
//! plan of the process — is never held by it, however large the
//! changeset. The lifecycle reaches the project only through this type; the
//! blocking types beneath it ([`ChangesetBuilder`], [`apply`](super::apply))
//! stay for synchronous callers (tests, fuzzing, tools).
//!
//! A panic in the blocking work is resumed in the awaiting task, so the
//! lifecycle reports it as the phase's panic. A future dropped while its
//! work runs (a lost lease, a shutdown) lets that work finish on the
//! blocking pool; staged files that are then never committed are removed
//! there too.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::apply::{self, ApplyError, Staged};
use super::changeset::{ChangeError, ChangeLimits, ChangesetBuilder};
use super::tree::ProjectTree;
use super::view::ProjectView;
use crate::model::{ChangeRecord, FileChange};

/// Run `work` on the blocking pool and wait for it; a panic in it is
/// resumed here.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // The runtime is shutting down, which drops the awaiting task
            // as well; nothing can be done with the project any more.
            Err(e) => panic!("workspace work was not run: {e}"),
        },
    }
}

/// Why a directory cannot be used as a project.
#[derive(Debug, thiserror::Error)]
pub enum ProjectDirError {
    /// It cannot be resolved (missing, unreadable).
    #[error("project directory `{}`: {source}", .path.display())]
    Unresolved {
        /// The directory as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// It resolves to something other than a directory.
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
}

/// An open project: its directory handles, used from async code. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Workspace {
    tree: Arc<ProjectTree>,
}

impl Workspace {
    /// The canonical path of the project directory `project` (symlinks
    /// resolved: it is the project's identity, see
    /// [`project_id`](super::project_id)).
    pub async fn canonical_dir(project: &Path) -> Result<PathBuf, ProjectDirError> {
        let project = project.to_path_buf();
        blocking(move || {
            let root =
                std::fs::canonicalize(&project).map_err(|source| ProjectDirError::Unresolved {
                    path: project.clone(),
                    source,
                })?;
            if !root.is_dir() {
                return Err(ProjectDirError::NotADirectory(root));
            }
            Ok(root)
        })
        .await
    }

    /// Open the project at `root` (canonicalised).
    pub async fn open(root: &Path) -> io::Result<Workspace> {
        let root = root.to_path_buf();
        let tree = blocking(move || ProjectTree::open(&root)).await?;
        Ok(Workspace {
            tree: Arc::new(tree),
        })
    }

    /// The canonical project root.
    pub fn root(&self) -> &Path {
        self.tree.root()
    }

    /// The read-only view plugins see, reads capped at `read_cap` bytes.
    /// Its reads are blocking: the plugin host runs them on the blocking
    /// pool (see `plugins::host::workspace`).
    pub fn view(&self, read_cap: u64) -> ProjectView {
        ProjectView::of_tree(self.tree.clone()).with_read_cap(read_cap)
    }

    /// A changeset to build from the steps' outcomes, under `limits`.
    pub fn changeset(&self, limits: ChangeLimits) -> Changeset {
        Changeset {
            builder: Some(ChangesetBuilder::new(self.tree.clone(), limits)),
        }
    }

    /// Validate `changes` against the disk, check them for drift, and stage
    /// every new file ([`apply::prepare`]); nothing in the project is
    /// replaced yet.
    pub async fn prepare(
        &self,
        changes: Arc<Vec<ChangeRecord>>,
        limits: ChangeLimits,
    ) -> Result<StagedApply, ApplyError> {
        let tree = self.tree.clone();
        let staged = {
            let changes = changes.clone();
            blocking(move || apply::prepare(tree, &changes, &limits)).await?
        };
        Ok(StagedApply {
            staged: OffThread(Some(staged)),
            changes,
            limits,
        })
    }

    /// Finish an interrupted apply of `changes` ([`apply::roll_forward`]).
    /// Returns how many files were written or deleted.
    pub async fn roll_forward(
        &self,
        changes: Arc<Vec<ChangeRecord>>,
        limits: ChangeLimits,
    ) -> Result<usize, ApplyError> {
        let tree = self.tree.clone();
        blocking(move || apply::roll_forward(&tree, &changes, &limits)).await
    }
}

/// A changeset being built from the steps of an Execute
/// ([`ChangesetBuilder`], its disk reads on the blocking pool).
#[derive(Debug)]
pub struct Changeset {
    /// `None` only while an [`add`](Changeset::add) runs, or after one was
    /// dropped before it finished (the changeset is then abandoned).
    builder: Option<ChangesetBuilder>,
}

impl Changeset {
    /// Validate one step's changes and add them
    /// ([`ChangesetBuilder::add`]). Returns them with normalised paths.
    ///
    /// # Panics
    /// If an earlier `add` was dropped before it finished: the changeset
    /// went with it.
    pub async fn add(&mut self, changes: Vec<FileChange>) -> Result<Vec<FileChange>, ChangeError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut builder = self
            .builder
            .take()
            .expect("a changeset whose add was dropped midway is abandoned");
        let (builder, added) = blocking(move || {
            let added = builder.add(changes);
            (builder, added)
        })
        .await;
        self.builder = Some(builder);
        added
    }

    /// The finished changeset ([`ChangesetBuilder::finish`]).
    ///
    /// # Panics
    /// As [`add`](Changeset::add).
    pub fn finish(self) -> Vec<ChangeRecord> {
        self.builder
            .expect("a changeset whose add was dropped midway is abandoned")
            .finish()
    }
}

/// A validated, staged apply, ready to [`commit`](StagedApply::commit).
/// Dropped without committing, its temp files and the directories staging
/// created are removed on the blocking pool.
#[derive(Debug)]
pub struct StagedApply {
    staged: OffThread<Staged>,
    changes: Arc<Vec<ChangeRecord>>,
    limits: ChangeLimits,
}

impl StagedApply {
    /// Rename every temp file over its target and unlink every deleted
    /// file ([`apply::commit`]). Returns how many files were written or
    /// deleted.
    pub async fn commit(self) -> Result<usize, ApplyError> {
        let StagedApply {
            staged,
            changes,
            limits,
        } = self;
        let staged = staged.into_inner();
        blocking(move || apply::commit(staged, &changes, &limits)).await
    }

    /// Remove the temp files and the directories staging created.
    pub async fn discard(self) {
        let staged = self.staged.into_inner();
        blocking(move || staged.discard()).await
    }
}

/// A value whose drop does blocking work (file removal): dropped on the
/// blocking pool when a runtime is running, in place otherwise.
#[derive(Debug)]
struct OffThread<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> OffThread<T> {
    fn into_inner(mut self) -> T {
        self.0.take().expect("only taken here, which consumes it")
    }
}

impl<T: Send + 'static> Drop for OffThread<T> {
    fn drop(&mut self) {
        let Some(value) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(value))),
            Err(_) => drop(value),
        }
    }
}

#[cfg(test)]
mod tests;
