//! The async facade: the same results as the blocking types beneath it,
//! computed on the blocking pool.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::workspace::apply::TEMP_PREFIX;

fn write(path: &str, contents: &str) -> FileChange {
    FileChange::Write {
        path: path.into(),
        contents: contents.as_bytes().to_vec(),
    }
}

fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    for (path, contents) in files {
        std::fs::write(root.join(path), contents).unwrap();
    }
    (dir, root)
}

/// The names in `root` (temp files included), sorted.
fn names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_work_runs_on_another_thread_and_its_panic_reaches_the_caller() {
    let caller = std::thread::current().id();
    assert_ne!(blocking(move || std::thread::current().id()).await, caller);
    let panicked = tokio::spawn(blocking(|| panic!("boom in the blocking pool")))
        .await
        .unwrap_err();
    let message = panicked.into_panic();
    assert_eq!(
        message.downcast_ref::<&str>(),
        Some(&"boom in the blocking pool")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn canonical_dir_resolves_and_refuses_what_is_not_a_directory() {
    let (_d, root) = project(&[("file", "x")]);
    std::fs::create_dir(root.join("sub")).unwrap();
    let resolved = Workspace::canonical_dir(&root.join("sub/../sub"))
        .await
        .unwrap();
    assert_eq!(resolved, root.join("sub"));
    match Workspace::canonical_dir(&root.join("missing")).await {
        Err(e @ ProjectDirError::Unresolved { .. }) => {
            assert!(e.to_string().starts_with("project directory `"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match Workspace::canonical_dir(&root.join("file")).await {
        Err(e @ ProjectDirError::NotADirectory(_)) => {
            assert!(e.to_string().ends_with("is not a directory"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_changeset_built_and_applied_through_the_facade() {
    let (_d, root) = project(&[("a.txt", "old"), ("gone.txt", "bye")]);
    let workspace = Workspace::open(&root).await.unwrap();
    assert_eq!(workspace.root(), root);
    let mut changeset = workspace.changeset(ChangeLimits::default());
    let added = changeset
        .add(vec![write("./a.txt", "new"), write("b/c.txt", "c")])
        .await
        .unwrap();
    assert_eq!(added[0].path(), "a.txt", "normalised");
    let refused = changeset.add(vec![write("../x", "")]).await.unwrap_err();
    assert!(matches!(refused, ChangeError::Path { .. }), "{refused:?}");
    changeset
        .add(vec![FileChange::Delete {
            path: "gone.txt".into(),
        }])
        .await
        .unwrap();
    let changes = Arc::new(changeset.finish());
    assert_eq!(changes.len(), 3);
    assert_eq!(
        workspace.view(1024).read("a.txt").unwrap(),
        b"old",
        "nothing written before apply"
    );
    let limits = ChangeLimits::default();
    let staged = workspace.prepare(changes.clone(), limits).await.unwrap();
    assert_eq!(staged.commit().await.unwrap(), 3);
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "new");
    assert_eq!(std::fs::read_to_string(root.join("b/c.txt")).unwrap(), "c");
    assert_eq!(names(&root), ["a.txt", "b"]);
    // Rolling forward an apply that is complete changes nothing.
    assert_eq!(workspace.roll_forward(changes, limits).await.unwrap(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn drift_is_reported_and_staged_files_are_removed_when_discarded_or_dropped() {
    let (_d, root) = project(&[("a.txt", "old")]);
    let workspace = Workspace::open(&root).await.unwrap();
    let limits = ChangeLimits::default();
    let mut changeset = workspace.changeset(limits);
    changeset.add(vec![write("a.txt", "new")]).await.unwrap();
    let changes = Arc::new(changeset.finish());

    let staged = workspace.prepare(changes.clone(), limits).await.unwrap();
    assert!(names(&root).iter().any(|n| n.starts_with(TEMP_PREFIX)));
    staged.discard().await;
    assert_eq!(names(&root), ["a.txt"]);

    // Dropped uncommitted (a phase aborted between staging and commit):
    // the temp file goes, removed on the blocking pool.
    drop(workspace.prepare(changes.clone(), limits).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while names(&root) != ["a.txt"] {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", names(&root));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    std::fs::write(root.join("a.txt"), "changed meanwhile").unwrap();
    match workspace.prepare(changes, limits).await {
        Err(ApplyError::Drift(drift)) => assert_eq!(drift[0].path, "a.txt"),
        other => panic!("{other:?}"),
    }
    assert_eq!(names(&root), ["a.txt"], "nothing staged");
}
