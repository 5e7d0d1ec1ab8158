//! Directory trees for the plugin harness: copying a fixture, and comparing
//! the result of a plan with the expected tree file by file, both ways.
//!
//! Regular files are compared by contents and symbolic links by their
//! target; directories only hold files (an empty one is not compared). A
//! `.lockstep/` folder at the root is host state, neither copied nor
//! compared.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::visible;
use crate::workspace::{is_binary, unified_diff};

/// The root entry that is never copied or compared.
const HOST_STATE: &str = ".lockstep";

/// Copy the tree at `from` to `to` (which must not exist yet), leaving out
/// `.lockstep/` at the root. Symbolic links are copied as links.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir(to)?;
    copy_dir(from, to, true)
}

fn copy_dir(from: &Path, to: &Path, root: bool) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if root && entry.file_name() == HOST_STATE {
            continue;
        }
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            copy_link(&source, &target)?;
        } else if kind.is_dir() {
            std::fs::create_dir(&target)?;
            copy_dir(&source, &target, false)?;
        } else {
            std::fs::copy(&source, &target)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn copy_link(source: &Path, target: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(std::fs::read_link(source)?, target)
}

#[cfg(not(unix))]
fn copy_link(source: &Path, target: &Path) -> io::Result<()> {
    std::fs::copy(source, target).map(|_| ())
}

/// How a file of the result differs from the expected tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// Expected, but not in the result.
    Missing,
    /// In the result, but not expected.
    Extra,
    /// In both, with other contents.
    Different,
}

impl DifferenceKind {
    /// `missing`, `extra` or `different`.
    pub fn as_str(self) -> &'static str {
        match self {
            DifferenceKind::Missing => "missing",
            DifferenceKind::Extra => "extra",
            DifferenceKind::Different => "different",
        }
    }
}

/// One file where the result and the expectation disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The path relative to both roots, with `/` separators.
    pub path: String,
    /// Missing, extra or different.
    pub kind: DifferenceKind,
    /// A unified diff from `expected/PATH` to `actual/PATH` (from or to
    /// `/dev/null` for a missing or extra file), or a line saying that
    /// binary contents differ.
    pub diff: String,
}

/// The outcome of [`compare_trees`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TreeComparison {
    /// How many paths were compared (the union of both trees).
    pub files: usize,
    /// Every disagreement, sorted by path.
    pub differences: Vec<Difference>,
}

impl TreeComparison {
    /// Whether the trees hold the same files with the same contents.
    pub fn matches(&self) -> bool {
        self.differences.is_empty()
    }

    /// The paths of the differences of `kind`.
    pub fn paths(&self, kind: DifferenceKind) -> Vec<&str> {
        self.differences
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.path.as_str())
            .collect()
    }
}

/// Compare the tree at `actual` with the tree at `expected`: every file of
/// either must be in both with the same contents.
pub fn compare_trees(actual: &Path, expected: &Path) -> io::Result<TreeComparison> {
    let have = files(actual)?;
    let want = files(expected)?;
    let paths: BTreeSet<&String> = have.keys().chain(want.keys()).collect();
    let mut differences = Vec::new();
    for path in &paths {
        let (a, e) = (have.get(*path), want.get(*path));
        let a = a.map(|p| contents(p)).transpose()?;
        let e = e.map(|p| contents(p)).transpose()?;
        let kind = match (&a, &e) {
            (Some(a), Some(e)) if a == e => continue,
            (Some(_), Some(_)) => DifferenceKind::Different,
            (Some(_), None) => DifferenceKind::Extra,
            (None, _) => DifferenceKind::Missing,
        };
        let from = match kind {
            DifferenceKind::Extra => "/dev/null".to_string(),
            _ => format!("expected/{path}"),
        };
        let to = match kind {
            DifferenceKind::Missing => "/dev/null".to_string(),
            _ => format!("actual/{path}"),
        };
        let (old, new) = (e.unwrap_or_default(), a.unwrap_or_default());
        differences.push(Difference {
            path: (*path).clone(),
            kind,
            diff: file_diff(&old, &new, &from, &to),
        });
    }
    Ok(TreeComparison {
        files: paths.len(),
        differences,
    })
}

/// How many files (and symbolic links) the tree at `root` holds, leaving
/// out `.lockstep/` at the root.
pub fn count_files(root: &Path) -> io::Result<usize> {
    Ok(files(root)?.len())
}

/// The difference of one file, headed `--- from` / `+++ to` like any
/// diff. Text is compared by lines, whatever its encoding: bytes that are
/// not UTF-8 (Latin-1 and other 8-bit text) are shown as `\xNN`, with a
/// note saying so. A binary file (a NUL byte near its start, as git
/// decides) is summarised byte by byte: sizes, how many bytes differ, and
/// where the first difference is.
fn file_diff(old: &[u8], new: &[u8], from: &str, to: &str) -> String {
    if !is_binary(old) && !is_binary(new) {
        let diff = unified_diff(old, new, from, to);
        if std::str::from_utf8(old).is_ok() && std::str::from_utf8(new).is_ok() {
            return diff;
        }
        // After the two header lines.
        let at = diff
            .match_indices('\n')
            .nth(1)
            .map_or(diff.len(), |(i, _)| i + 1);
        let note = "not UTF-8: bytes that are not UTF-8 are shown as \\xNN\n";
        return format!("{}{note}{}", &diff[..at], &diff[at..]);
    }
    let mut out = format!("--- {}\n+++ {}\n", visible::line(from), visible::line(to));
    out.push_str(&format!(
        "binary contents differ ({} expected, {} in the result)",
        bytes(old.len()),
        new.len()
    ));
    let common = old.len().min(new.len());
    let differing = old.iter().zip(new).filter(|(a, b)| a != b).count();
    match old.iter().zip(new).position(|(a, b)| a != b) {
        Some(i) => out.push_str(&format!(
            "; {differing} of the first {} {}, the first at byte {i} (0x{:02x} expected, 0x{:02x} in the result)",
            bytes(common),
            if differing == 1 { "differs" } else { "differ" },
            old[i],
            new[i]
        )),
        None if common > 0 => out.push_str(&format!("; the first {} are the same", bytes(common))),
        None => {}
    }
    out.push('\n');
    out
}

fn bytes(n: usize) -> String {
    format!("{n} byte{}", if n == 1 { "" } else { "s" })
}

/// Every file and symbolic link under `root`, by relative path.
fn files(root: &Path) -> io::Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if prefix.is_empty() && name == HOST_STATE {
                continue;
            }
            let relative = format!("{prefix}{name}");
            if entry.file_type()?.is_dir() {
                pending.push((entry.path(), format!("{relative}/")));
            } else {
                found.insert(relative, entry.path());
            }
        }
    }
    Ok(found)
}

/// A file's bytes, or `symlink -> TARGET` for a symbolic link.
fn contents(path: &Path) -> io::Result<Vec<u8>> {
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        let target = std::fs::read_link(path)?;
        return Ok(format!("symlink -> {}\n", target.display()).into_bytes());
    }
    std::fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn equal_trees_match() {
        let files = [("a.txt", "one\n"), ("src/b.c", "two\n"), ("src/deep/c", "")];
        let (a, b) = (tree(&files), tree(&files));
        std::fs::create_dir(a.path().join("empty")).unwrap();
        let c = compare_trees(a.path(), b.path()).unwrap();
        assert!(c.matches(), "{c:?}");
        assert_eq!(c.files, 3);
    }

    #[test]
    fn missing_extra_and_different_files_are_named_with_a_diff() {
        let actual = tree(&[("same", "x\n"), ("changed", "a\nB\n"), ("extra/new", "n\n")]);
        let expected = tree(&[("same", "x\n"), ("changed", "a\nb\n"), ("gone", "g\n")]);
        let c = compare_trees(actual.path(), expected.path()).unwrap();
        assert!(!c.matches());
        assert_eq!(c.files, 4);
        assert_eq!(c.paths(DifferenceKind::Different), ["changed"]);
        assert_eq!(c.paths(DifferenceKind::Extra), ["extra/new"]);
        assert_eq!(c.paths(DifferenceKind::Missing), ["gone"]);
        let by = |p: &str| &c.differences.iter().find(|d| d.path == p).unwrap().diff;
        assert_eq!(
            by("changed"),
            "--- expected/changed\n+++ actual/changed\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n"
        );
        assert!(by("extra/new").starts_with("--- /dev/null\n+++ actual/extra/new\n"));
        assert!(by("extra/new").ends_with("+n\n"));
        assert!(by("gone").starts_with("--- expected/gone\n+++ /dev/null\n"));
        // Sorted by path.
        let order: Vec<&str> = c.differences.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(order, ["changed", "extra/new", "gone"]);
    }

    #[test]
    fn binary_files_and_host_state() {
        let actual = tree(&[("bin", "\u{0}"), (".lockstep/lockstep.db", "db")]);
        let expected = tree(&[("bin", "\u{0}")]);
        std::fs::write(expected.path().join("bin"), [0xff, 0xfe]).unwrap();
        let c = compare_trees(actual.path(), expected.path()).unwrap();
        assert_eq!(c.files, 1, ".lockstep/ is not compared: {c:?}");
        assert_eq!(
            c.differences[0].diff,
            "--- expected/bin\n+++ actual/bin\nbinary contents differ (2 bytes expected, 1 in the result); \
             1 of the first 1 byte differs, the first at byte 0 (0xff expected, 0x00 in the result)\n"
        );
        // A nested `.lockstep` is project data, compared like any other.
        std::fs::create_dir(expected.path().join("sub")).unwrap();
        std::fs::write(expected.path().join("sub/.lockstep"), "x").unwrap();
        let c = compare_trees(actual.path(), expected.path()).unwrap();
        assert_eq!(c.paths(DifferenceKind::Missing), ["sub/.lockstep"]);
    }

    #[test]
    fn latin1_text_is_diffed_by_lines_and_binary_files_are_summarised() {
        let diff = |old: &[u8], new: &[u8]| file_diff(old, new, "expected/f", "actual/f");
        // Latin-1: `café` and `cafè`, no NUL.
        assert_eq!(
            diff(b"menu\ncaf\xe9\n", b"menu\ncaf\xe8\n"),
            "--- expected/f\n+++ actual/f\nnot UTF-8: bytes that are not UTF-8 are shown as \\xNN\n\
             @@ -1,2 +1,2 @@\n menu\n-caf\\xe9\n+caf\\xe8\n"
        );
        assert_eq!(
            diff(b"\x00\x01\x02\x03", b"\x00\x09\x02\x07\x08"),
            "--- expected/f\n+++ actual/f\nbinary contents differ (4 bytes expected, 5 in the result); \
             2 of the first 4 bytes differ, the first at byte 1 (0x01 expected, 0x09 in the result)\n"
        );
        assert_eq!(
            diff(b"\x00ab", b"\x00a"),
            "--- expected/f\n+++ actual/f\nbinary contents differ (3 bytes expected, 2 in the result); \
             the first 2 bytes are the same\n"
        );
        assert!(
            diff(b"a\n", b"b\n").contains("-a\n+b\n"),
            "UTF-8 text as before"
        );
    }

    #[test]
    fn a_copy_leaves_out_host_state_and_keeps_links() {
        let from = tree(&[("a", "1"), ("d/b", "2"), (".lockstep/lockstep.db", "db")]);
        #[cfg(unix)]
        std::os::unix::fs::symlink("d/b", from.path().join("link")).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let to = scratch.path().join("copy");
        copy_tree(from.path(), &to).unwrap();
        assert!(!to.join(".lockstep").exists());
        assert!(compare_trees(&to, from.path()).unwrap().matches());
        #[cfg(unix)]
        {
            assert!(std::fs::symlink_metadata(to.join("link"))
                .unwrap()
                .file_type()
                .is_symlink());
            // A link that points elsewhere differs, even to equal contents.
            std::fs::remove_file(to.join("link")).unwrap();
            std::os::unix::fs::symlink("a", to.join("link")).unwrap();
            let c = compare_trees(&to, from.path()).unwrap();
            assert_eq!(c.paths(DifferenceKind::Different), ["link"]);
            assert!(c.differences[0].diff.contains("+symlink -> a"), "{c:?}");
        }
        assert!(
            copy_tree(from.path(), &to).is_err(),
            "the target must be new"
        );
    }
}
