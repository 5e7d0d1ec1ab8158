//! The project on disk: the read-only view plugins see, changeset
//! validation, the atomic apply that only the host performs, and diffs.
//! Every file operation on a project goes through the directory handles of
//! [`tree`], which never follow a symlink. Async code (the lifecycle) uses
//! the project only through [`Workspace`], which runs that blocking work
//! on tokio's blocking pool.

pub mod apply;
pub mod changeset;
mod diff;
mod facade;
pub mod path;
pub mod tree;
mod view;

pub use apply::{ApplyError, Drift, Staged};
pub use changeset::{
    content_hash, ChangeError, ChangeLimits, ChangesetBuilder, DEFAULT_MAX_ORIGINAL_BYTES,
};
pub use diff::{
    change_diff, is_binary, unified_diff, DiffLine, DiffNote, FileDiff, FileKind, Hunk, LineKind,
    Span, SpanKind,
};
pub use facade::{Changeset, ProjectDirError, StagedApply, Workspace};
pub use path::PathError;
pub use tree::{ProjectTree, TreeError};
pub use view::{EntryInfo, FsError, ProjectView, DEFAULT_LIST_CAP, DEFAULT_READ_CAP};

/// A stable id for the project at canonical `root`: the lock scope of
/// `project:<id>` resources.
pub fn project_id(root: &std::path::Path) -> String {
    content_hash(root.to_string_lossy().as_bytes())[..16].to_string()
}

#[cfg(all(test, unix))]
mod tests;
