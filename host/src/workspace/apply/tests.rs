//! Apply: drift, roll-forward, planted symlinks, nested paths, failures
//! part-way.

use std::path::Path;

use super::*;
use crate::workspace::path::PathError;

fn hash(root: &Path, path: &str) -> Option<String> {
    std::fs::read(root.join(path))
        .ok()
        .map(|bytes| content_hash(&bytes))
}

fn record(root: &Path, path: &str, contents: Option<&str>) -> ChangeRecord {
    ChangeRecord {
        path: path.into(),
        kind: if contents.is_some() {
            ChangeKind::Write
        } else {
            ChangeKind::Delete
        },
        contents: contents.map(|c| c.as_bytes().to_vec()),
        base_contents: None,
        base_hash: hash(root, path),
        new_hash: contents.map(|c| content_hash(c.as_bytes())),
    }
}

fn project() -> (tempfile::TempDir, std::path::PathBuf, Arc<ProjectTree>) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let tree = Arc::new(ProjectTree::open(&root).unwrap());
    (dir, root, tree)
}

fn limits() -> ChangeLimits {
    ChangeLimits::default()
}

/// Prepare and commit, as the lifecycle does.
fn apply(tree: &Arc<ProjectTree>, changes: &[ChangeRecord]) -> Result<usize, ApplyError> {
    let staged = prepare_with(tree.clone(), changes, &limits(), Faults::default())?;
    commit(staged, changes, &limits())
}

/// Every name under `root`, recursively, sorted (symlinks not followed).
fn names(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &format!("{name}/"), out);
            }
            out.push(name);
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out.sort();
    out
}

#[test]
fn drift_is_detected_and_nothing_written() {
    let (_d, root, tree) = project();
    std::fs::write(root.join("a"), "a").unwrap();
    let changes = vec![
        record(&root, "a", Some("A")),
        record(&root, "new/b", Some("B")),
    ];
    std::fs::write(root.join("a"), "edited").unwrap();
    match check(&tree, &changes, &limits()) {
        Err(ApplyError::Drift(d)) => {
            assert_eq!(d.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(), ["a"])
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(apply(&tree, &changes), Err(ApplyError::Drift(_))));
    assert_eq!(std::fs::read_to_string(root.join("a")).unwrap(), "edited");
    assert!(!root.join("new").exists());
    assert_eq!(names(&root), ["a"]);
}

#[test]
fn writes_deletes_and_rolls_forward_idempotently() {
    let (_d, root, tree) = project();
    std::fs::write(root.join("a"), "a").unwrap();
    std::fs::write(root.join("gone"), "x").unwrap();
    let changes = vec![
        record(&root, "a", Some("A")),
        record(&root, "d/b", Some("B")),
        record(&root, "gone", None),
    ];
    check(&tree, &changes, &limits()).unwrap();
    // Simulate a crash after the first file: write only it.
    roll_forward(&tree, &changes[..1], &limits()).unwrap();
    assert_eq!(roll_forward(&tree, &changes, &limits()).unwrap(), 2);
    assert_eq!(std::fs::read_to_string(root.join("a")).unwrap(), "A");
    assert_eq!(std::fs::read_to_string(root.join("d/b")).unwrap(), "B");
    assert!(!root.join("gone").exists());
    assert_eq!(roll_forward(&tree, &changes, &limits()).unwrap(), 0);
    assert_eq!(names(&root), ["a", "d", "d/b"], "no temp file is left");
}

#[test]
fn apply_keeps_permissions_and_leaves_no_temp_files() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, root, tree) = project();
    std::fs::write(root.join("run.sh"), "old").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let changes = vec![
        record(&root, "run.sh", Some("new")),
        record(&root, "x/y/z.txt", Some("z")),
    ];
    assert_eq!(apply(&tree, &changes).unwrap(), 2);
    let mode = std::fs::metadata(root.join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    assert_eq!(names(&root), ["run.sh", "x", "x/y", "x/y/z.txt"]);
}

#[test]
fn a_planted_temp_symlink_does_not_redirect_apply() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "outside").unwrap();
    let (_d, root, tree) = project();
    std::fs::write(root.join("a.txt"), "old").unwrap();
    // The name the old apply used for its temp file, and names like the
    // new ones: a checkout can plant any of them.
    std::os::unix::fs::symlink(&victim, root.join(".a.txt.lockstep-tmp")).unwrap();
    std::os::unix::fs::symlink(&victim, root.join(".lockstep-tmp-0000000000000000")).unwrap();
    let changes = vec![record(&root, "a.txt", Some("plugin bytes"))];
    assert_eq!(apply(&tree, &changes).unwrap(), 1);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "outside");
    let meta = std::fs::symlink_metadata(root.join("a.txt")).unwrap();
    assert!(meta.file_type().is_file(), "a.txt is a regular file");
    assert_eq!(
        std::fs::read_to_string(root.join("a.txt")).unwrap(),
        "plugin bytes"
    );
}

#[test]
fn a_symlinked_parent_directory_is_not_followed_by_apply() {
    let outside = tempfile::tempdir().unwrap();
    let (_d, root, tree) = project();
    std::fs::create_dir(root.join("src")).unwrap();
    let changes = vec![
        record(&root, "ok.txt", Some("ok")),
        record(&root, "src/new.rs", Some("evil")),
    ];
    // After Execute, `src` becomes a symlink out of the project.
    std::fs::remove_dir(root.join("src")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("src")).unwrap();
    match apply(&tree, &changes) {
        Err(ApplyError::Path(ChangeError::Path {
            reason: PathError::SymlinkEscape(_),
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    assert!(!outside.path().join("new.rs").exists());
    assert!(!root.join("ok.txt").exists(), "nothing was written");
    // A symlink to a folder inside the project is not followed either.
    std::fs::remove_file(root.join("src")).unwrap();
    std::fs::create_dir(root.join("real")).unwrap();
    std::os::unix::fs::symlink("real", root.join("src")).unwrap();
    assert!(matches!(apply(&tree, &changes), Err(ApplyError::Path(_))));
    assert!(!root.join("real/new.rs").exists());
}

#[test]
fn roll_forward_does_not_follow_a_directory_replaced_by_a_symlink() {
    let outside = tempfile::tempdir().unwrap();
    let (_d, root, tree) = project();
    std::fs::create_dir(root.join("src")).unwrap();
    std::fs::write(root.join("src/lib.rs"), "old").unwrap();
    let changes = vec![
        record(&root, "a.txt", Some("A")),
        record(&root, "src/lib.rs", Some("new")),
    ];
    // Crashed after the first file; then `src` was swapped for a symlink.
    roll_forward(&tree, &changes[..1], &limits()).unwrap();
    std::fs::rename(root.join("src"), root.join("src.moved")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("src")).unwrap();
    match roll_forward(&tree, &changes, &limits()) {
        Err(ApplyError::Path(ChangeError::Path {
            reason: PathError::SymlinkEscape(_),
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    // Paths read back from the database are validated again.
    let mut tampered = record(&root, "b", Some("x"));
    tampered.path = "../escaped".into();
    assert!(matches!(
        roll_forward(&tree, &[tampered], &limits()),
        Err(ApplyError::Path(ChangeError::Path {
            reason: PathError::ParentDir(_),
            ..
        }))
    ));
    let mut tampered = record(&root, "b", Some("x"));
    tampered.path = "vendor/.git/hooks/pre-commit".into();
    assert!(matches!(
        roll_forward(&tree, &[tampered], &limits()),
        Err(ApplyError::Path(ChangeError::Path {
            reason: PathError::Reserved(..),
            ..
        }))
    ));
    assert!(!root.join("vendor").exists());
}

#[test]
fn a_changeset_with_a_file_and_its_child_is_refused_before_any_write() {
    let (_d, root, tree) = project();
    std::fs::write(root.join("first"), "1").unwrap();
    let changes = vec![
        record(&root, "first", Some("changed")),
        record(&root, "a", Some("file")),
        record(&root, "a/b", Some("child")),
    ];
    match apply(&tree, &changes) {
        Err(ApplyError::Path(ChangeError::Nested { path, other })) => {
            assert_eq!((path.as_str(), other.as_str()), ("a/b", "a"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        roll_forward(&tree, &changes, &limits()),
        Err(ApplyError::Path(ChangeError::Nested { .. }))
    ));
    assert_eq!(names(&root), ["first"]);
    assert_eq!(std::fs::read_to_string(root.join("first")).unwrap(), "1");
    // A file where the tree has a directory, and the other way round.
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    let changes = vec![
        record(&root, "first", Some("changed")),
        record(&root, "dir", Some("file over a directory")),
    ];
    assert!(matches!(
        apply(&tree, &changes),
        Err(ApplyError::Path(ChangeError::NotAFile { .. }))
    ));
    let changes = vec![
        record(&root, "new.txt", Some("new")),
        record(&root, "first/child", Some("under a file")),
    ];
    assert!(matches!(
        apply(&tree, &changes),
        Err(ApplyError::Path(ChangeError::ParentNotADirectory { .. }))
    ));
    assert_eq!(std::fs::read_to_string(root.join("first")).unwrap(), "1");
    assert!(!root.join("new.txt").exists());
}

#[test]
fn a_failed_apply_leaves_the_old_tree_or_the_new_tree() {
    let (_d, root, tree) = project();
    for f in ["a", "b", "c"] {
        std::fs::write(root.join(f), "old").unwrap();
    }
    let changes = vec![
        record(&root, "a", Some("new")),
        record(&root, "n/m/b", Some("new")),
        record(&root, "b", Some("new")),
        record(&root, "c", None),
    ];
    let old = names(&root);
    let contents = |paths: &[&str]| {
        paths
            .iter()
            .map(|p| std::fs::read_to_string(root.join(p)).unwrap_or_else(|_| "-".into()))
            .collect::<Vec<_>>()
    };
    // Staging fails at the third file: no temp file, no new directory.
    for k in 1..=3 {
        let faults = Faults {
            fail_stage: Some(k),
            ..Faults::default()
        };
        let err = prepare_with(tree.clone(), &changes, &limits(), faults).unwrap_err();
        assert!(matches!(err, ApplyError::Io { .. }), "{err}");
        assert_eq!(names(&root), old, "staging failure {k}");
    }
    // Staged, then dropped (the journal could not be written).
    drop(prepare_with(tree.clone(), &changes, &limits(), Faults::default()).unwrap());
    assert_eq!(names(&root), old);
    // The first rename fails: the old tree.
    let faults = Faults {
        fail_commit: Some(1),
        ..Faults::default()
    };
    let staged = prepare_with(tree.clone(), &changes, &limits(), faults).unwrap();
    assert!(matches!(
        commit(staged, &changes, &limits()),
        Err(ApplyError::Io { .. })
    ));
    assert_eq!(names(&root), old);
    assert_eq!(contents(&["a", "b", "c"]), ["old", "old", "old"]);
    // A later rename fails once: the rest is rolled forward at once.
    let faults = Faults {
        fail_commit: Some(3),
        ..Faults::default()
    };
    let staged = prepare_with(tree.clone(), &changes, &limits(), faults).unwrap();
    assert_eq!(commit(staged, &changes, &limits()).unwrap(), 4);
    assert_eq!(
        contents(&["a", "n/m/b", "b", "c"]),
        ["new", "new", "new", "-"]
    );
    assert_eq!(names(&root), ["a", "b", "n", "n/m", "n/m/b"]);
}

#[test]
fn a_rename_that_keeps_failing_is_finished_by_roll_forward() {
    let (_d, root, tree) = project();
    for f in ["a", "b"] {
        std::fs::write(root.join(f), "old").unwrap();
    }
    let changes = vec![
        record(&root, "a", Some("new")),
        record(&root, "b", Some("new")),
    ];
    let staged = prepare_with(tree.clone(), &changes, &limits(), Faults::default()).unwrap();
    // Between staging and the renames `b` becomes a non-empty directory:
    // the rename of `b` fails, and so does rolling forward at once.
    std::fs::remove_file(root.join("b")).unwrap();
    std::fs::create_dir_all(root.join("b/in-the-way")).unwrap();
    match commit(staged, &changes, &limits()) {
        Err(ApplyError::Partial {
            done: 1, total: 2, ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        names(&root),
        ["a", "b", "b/in-the-way"],
        "no temp file left"
    );
    // Once the obstacle is gone, roll-forward (the plan's retry) finishes.
    std::fs::remove_dir_all(root.join("b")).unwrap();
    assert_eq!(roll_forward(&tree, &changes, &limits()).unwrap(), 1);
    assert_eq!(std::fs::read_to_string(root.join("b")).unwrap(), "new");
}

#[test]
fn stale_temp_files_are_removed_but_changeset_targets_are_kept() {
    let (_d, root, tree) = project();
    std::fs::write(root.join(".lockstep-tmp-00000000deadbeef"), "stale").unwrap();
    std::fs::write(root.join(".lockstep-tmp-notatemp"), "keep").unwrap();
    let changes = vec![record(&root, "a", Some("A"))];
    assert_eq!(roll_forward(&tree, &changes, &limits()).unwrap(), 1);
    assert_eq!(names(&root), [".lockstep-tmp-notatemp", "a"]);
}

#[test]
fn originals_over_the_read_cap_stop_the_drift_check() {
    let (_d, root, tree) = project();
    std::fs::write(root.join("a"), "1234").unwrap();
    let changes = vec![record(&root, "a", Some("x"))];
    let small = ChangeLimits {
        max_original_bytes: 4,
        ..ChangeLimits::default()
    };
    check(&tree, &changes, &small).unwrap();
    std::fs::write(root.join("a"), "12345").unwrap();
    assert!(matches!(
        check(&tree, &changes, &small),
        Err(ApplyError::Path(ChangeError::OriginalTooLarge {
            size: 5,
            limit: 4,
            ..
        }))
    ));
}
