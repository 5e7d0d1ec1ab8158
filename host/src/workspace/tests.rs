//! Attacks from inside a project checkout, across the view, the changeset
//! builder and apply: FIFOs, nested VCS directories, oversized originals.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::model::FileChange;

fn project() -> (tempfile::TempDir, PathBuf, Arc<ProjectTree>) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let tree = Arc::new(ProjectTree::open(&root).unwrap());
    (dir, root, tree)
}

fn write(path: &str, contents: &str) -> FileChange {
    FileChange::Write {
        path: path.into(),
        contents: contents.as_bytes().to_vec(),
    }
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs `f` on a thread and fails the test if it has not returned in 10 s
/// (a blocking open of a FIFO would never return).
fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the reader hung on the FIFO")
}

#[test]
fn a_fifo_in_the_project_does_not_hang_the_reader() {
    let (_d, root, tree) = project();
    std::fs::create_dir(root.join("src")).unwrap();
    std::fs::write(root.join("src/lib.rs"), "lib").unwrap();
    mkfifo(&root.join("src/pipe"));
    let started = Instant::now();
    let view = ProjectView::of_tree(tree.clone());
    let (read, meta, list) = within_seconds(move || {
        (
            view.read("src/pipe"),
            view.metadata("src/pipe"),
            view.list(""),
        )
    });
    match read {
        Err(FsError::Invalid(m)) => assert!(m.contains("is a FIFO, not a regular file"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(meta, Err(FsError::Invalid(_))), "{meta:?}");
    assert_eq!(list.unwrap(), ["src/lib.rs"], "a FIFO is not listed");
    // The changeset builder reads the original of every target it is
    // given: a write to the FIFO is refused without opening it.
    let builder_tree = tree.clone();
    let added = within_seconds(move || {
        ChangesetBuilder::new(builder_tree, ChangeLimits::default())
            .add(vec![write("src/pipe", "x")])
    });
    match added {
        Err(ChangeError::NotAFile { found, .. }) => assert_eq!(found, "a FIFO"),
        other => panic!("{other:?}"),
    }
    // So is apply's drift check, for a FIFO planted after Execute.
    let mut b = ChangesetBuilder::new(tree.clone(), ChangeLimits::default());
    b.add(vec![write("later", "x")]).unwrap();
    let changes = b.finish();
    mkfifo(&root.join("later"));
    let apply_tree = tree.clone();
    let checked =
        within_seconds(move || apply::check(&apply_tree, &changes, &ChangeLimits::default()));
    assert!(
        matches!(checked, Err(ApplyError::Path(ChangeError::NotAFile { .. }))),
        "{checked:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn originals_over_the_read_cap_are_refused() {
    let (_d, root, tree) = project();
    let limits = ChangeLimits {
        max_original_bytes: 1024,
        ..ChangeLimits::default()
    };
    std::fs::write(root.join("under.txt"), vec![b'u'; 1024]).unwrap();
    std::fs::write(root.join("over.txt"), vec![b'o'; 1025]).unwrap();
    let mut b = ChangesetBuilder::new(tree.clone(), limits);
    // Just under (at) the cap: read, hashed and kept for the diff.
    b.add(vec![write("under.txt", "new")]).unwrap();
    // One byte over: refused, with the cap and what to do.
    let err = b.add(vec![write("over.txt", "new")]).unwrap_err();
    assert_eq!(
        err,
        ChangeError::OriginalTooLarge {
            path: "over.txt".into(),
            size: 1025,
            limit: 1024
        }
    );
    assert!(err.to_string().contains("max_original_bytes"), "{err}");
    // Deleting an oversized file is refused too: its original is read.
    assert!(matches!(
        b.add(vec![FileChange::Delete {
            path: "over.txt".into()
        }]),
        Err(ChangeError::OriginalTooLarge { .. })
    ));
    let changes = b.finish();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].base_contents.as_deref().map(<[u8]>::len),
        Some(1024)
    );
    assert_eq!(DEFAULT_MAX_ORIGINAL_BYTES, 16 * 1024 * 1024);
}

#[test]
fn nested_vcs_directories_are_neither_read_listed_nor_written() {
    let (_d, root, tree) = project();
    for dir in [
        "vendor/x/.git/hooks",
        "vendor/y/.HG",
        "sub/.svn",
        "sub/.jj/repo",
        "lib/.lockstep",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("vendor/x/.git/config"), "[core]").unwrap();
    std::fs::write(root.join("vendor/x/.git/hooks/pre-commit"), "#!/bin/sh").unwrap();
    std::fs::write(root.join("vendor/y/.HG/hgrc"), "").unwrap();
    std::fs::write(root.join("sub/.svn/entries"), "").unwrap();
    std::fs::write(root.join("sub/.jj/repo/store"), "").unwrap();
    std::fs::write(root.join("lib/.lockstep/db"), "").unwrap();
    std::fs::write(root.join("vendor/x/lib.rs"), "lib").unwrap();
    let view = ProjectView::of_tree(tree.clone());
    assert_eq!(view.list("").unwrap(), ["vendor/x/lib.rs"]);
    assert_eq!(view.list("**/*").unwrap(), ["vendor/x/lib.rs"]);
    assert!(view.list("**/config").unwrap().is_empty());
    assert!(matches!(
        view.list("vendor/x/.git/"),
        Err(FsError::Denied(_))
    ));
    for path in [
        "vendor/x/.git/config",
        "vendor/x/.GIT/hooks/pre-commit",
        "vendor/y/.hg/hgrc",
        "sub/.svn/entries",
        "sub/.jj/repo/store",
        "lib/.lockstep/db",
    ] {
        assert!(matches!(view.read(path), Err(FsError::Denied(_))), "{path}");
        assert!(
            matches!(view.metadata(path), Err(FsError::Denied(_))),
            "{path}"
        );
        let mut b = ChangesetBuilder::new(tree.clone(), ChangeLimits::default());
        assert!(
            matches!(
                b.add(vec![write(path, "pwned")]),
                Err(ChangeError::Path {
                    reason: PathError::Reserved(..),
                    ..
                })
            ),
            "{path}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(root.join("vendor/x/.git/config")).unwrap(),
        "[core]"
    );
}
