//! The `workspace` capability: the plugin's read-only view of the project
//! ([`ProjectView`], with the overlay of earlier steps during Execute).
//!
//! Every read runs on the blocking pool, off the async worker. A path
//! outside the project, a symlink that points out, a file too large: these
//! come back as `fs-error` values, never as traps.

use std::sync::Arc;

use super::super::bindings::latest::lockstep::plugin::{types as wit, workspace};
use super::super::convert;
use crate::workspace::ProjectView;

/// The `workspace` capability's state for one call.
#[derive(Debug, Clone)]
pub struct WorkspaceCtx {
    project: Arc<ProjectView>,
}

impl WorkspaceCtx {
    /// Reads through `project`.
    pub fn new(project: Arc<ProjectView>) -> Self {
        WorkspaceCtx { project }
    }
}

/// Run a blocking file-system read off the async worker.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, wit::FsError> + Send + 'static,
) -> Result<T, wit::FsError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(wit::FsError::Io(format!("workspace read failed: {e}"))))
}

impl workspace::Host for WorkspaceCtx {
    async fn list(
        &mut self,
        pattern: String,
    ) -> wasmtime::Result<Result<Vec<String>, wit::FsError>> {
        let view = self.project.clone();
        Ok(blocking(move || view.list(&pattern).map_err(convert::fs_error_to_wit)).await)
    }

    async fn read(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, wit::FsError>> {
        let view = self.project.clone();
        Ok(blocking(move || view.read(&path).map_err(convert::fs_error_to_wit)).await)
    }

    async fn metadata(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<wit::FileInfo, wit::FsError>> {
        let view = self.project.clone();
        Ok(blocking(move || {
            view.metadata(&path)
                .map(convert::entry_to_wit)
                .map_err(convert::fs_error_to_wit)
        })
        .await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileChange;
    use workspace::Host as _;

    /// A project with `src/a.txt` ("hello") and a file beside it, outside.
    fn project() -> (tempfile::TempDir, ProjectView) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.txt"), "hello").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        let view = ProjectView::new(&root).unwrap();
        (dir, view)
    }

    #[tokio::test]
    async fn reads_lists_and_metadata_come_from_the_project() {
        let (_dir, view) = project();
        let mut ws = WorkspaceCtx::new(Arc::new(view));
        assert_eq!(
            ws.read("src/a.txt".into()).await.unwrap().unwrap(),
            b"hello"
        );
        assert_eq!(
            ws.list("**/*.txt".into()).await.unwrap().unwrap(),
            ["src/a.txt"]
        );
        let info = ws.metadata("src/a.txt".into()).await.unwrap().unwrap();
        assert_eq!((info.path.as_str(), info.size), ("src/a.txt", 5));
        assert!(matches!(info.kind, wit::EntryKind::File));
        let dir = ws.metadata("src".into()).await.unwrap().unwrap();
        assert!(matches!(dir.kind, wit::EntryKind::Directory));
    }

    #[tokio::test]
    async fn refusals_are_values() {
        let (_dir, view) = project();
        let mut ws = WorkspaceCtx::new(Arc::new(view.with_read_cap(2)));
        let outside = ws.read("../outside.txt".into()).await.unwrap();
        assert!(
            matches!(outside, Err(wit::FsError::Denied(_))),
            "{outside:?}"
        );
        let reserved = ws.read(".git/config".into()).await.unwrap();
        assert!(
            matches!(reserved, Err(wit::FsError::Denied(_))),
            "{reserved:?}"
        );
        let missing = ws.metadata("src/b.txt".into()).await.unwrap();
        assert!(
            matches!(missing, Err(wit::FsError::NotFound(_))),
            "{missing:?}"
        );
        let large = ws.read("src/a.txt".into()).await.unwrap();
        assert!(matches!(large, Err(wit::FsError::TooLarge(2))), "{large:?}");
    }

    #[tokio::test]
    async fn earlier_steps_show_through_the_overlay() {
        let (_dir, mut view) = project();
        view.overlay_changes([
            FileChange::Write {
                path: "src/b.txt".into(),
                contents: b"new".to_vec(),
            },
            FileChange::Delete {
                path: "src/a.txt".into(),
            },
        ]);
        let mut ws = WorkspaceCtx::new(Arc::new(view));
        assert_eq!(ws.read("src/b.txt".into()).await.unwrap().unwrap(), b"new");
        let deleted = ws.read("src/a.txt".into()).await.unwrap();
        assert!(
            matches!(deleted, Err(wit::FsError::NotFound(_))),
            "{deleted:?}"
        );
    }
}
