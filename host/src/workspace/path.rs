//! Project-relative path rules shared by reads, changesets and apply.
//!
//! A path a plugin names must be relative, use `/` separators, contain no
//! `..`, no NUL, no backslash, and must not name host-private state
//! (`.lockstep/`) or the VCS directory (`.git/`). Symlinks are checked
//! against the real filesystem by [`resolve_in_root`]. [`spelling_key`]
//! says which names one case-insensitive, normalising filesystem would
//! take for the same file.

use std::path::{Component, Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

/// Longest accepted project-relative path, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest accepted single path component, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;
/// Top-level directories no plugin may read or change.
pub const RESERVED_DIRS: &[&str] = &[".lockstep", ".git"];
/// Longest rendering of a path in an error message, in characters.
const SHOWN_PATH_CHARS: usize = 160;

/// `path` as error messages show it: control and non-ASCII characters
/// escaped (so that `é` and `e` + a combining accent look different), cut
/// to [`SHOWN_PATH_CHARS`] characters with the full length noted.
pub fn shown(path: &str) -> String {
    let escaped: String = path.escape_default().collect();
    match escaped.char_indices().nth(SHOWN_PATH_CHARS) {
        None => escaped,
        Some((cut, _)) => format!("{}… ({} bytes)", &escaped[..cut], path.len()),
    }
}

/// The key under which a case-insensitive, normalising filesystem (macOS,
/// Windows) files `path`: NFC-normalised and lower-cased. Two different
/// paths with one key are one file there and two on Linux.
pub fn spelling_key(path: &str) -> String {
    path.nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty path.
    #[error("the path is empty")]
    Empty,
    /// Absolute path (`/x`, `C:\x`, `\\server`).
    #[error("`{0}` is absolute; paths are relative to the project root")]
    Absolute(String),
    /// A `..` component.
    #[error("`{0}` contains `..`; paths may not leave the project")]
    ParentDir(String),
    /// A NUL, backslash or control character.
    #[error("`{0}` contains a NUL, backslash or control character")]
    BadCharacter(String),
    /// Too long overall or in one component.
    #[error(
        "path of {0} bytes is too long (max {MAX_PATH_LEN}, {MAX_COMPONENT_LEN} per component)"
    )]
    TooLong(usize),
    /// Names `.lockstep/` or `.git/`.
    #[error("`{0}` is inside `{1}/`, which belongs to the host")]
    Reserved(String, String),
    /// A symlink on the way leads outside the project.
    #[error("`{0}` goes through a symlink that leads outside the project")]
    SymlinkEscape(String),
}

/// Normalise a project-relative path: drop `.` and empty components, reject
/// everything [`PathError`] lists. Returns the `/`-joined canonical form.
pub fn normalize(path: &str) -> Result<String, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong(path.len()));
    }
    if path
        .chars()
        .any(|c| c == '\0' || c == '\\' || c.is_control())
    {
        return Err(PathError::BadCharacter(shown(path)));
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute(shown(path)));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err(PathError::ParentDir(shown(path))),
            p if p.len() > MAX_COMPONENT_LEN => return Err(PathError::TooLong(p.len())),
            p => parts.push(p),
        }
    }
    let Some(first) = parts.first() else {
        return Err(PathError::Empty);
    };
    // A drive prefix (`C:`) is looked for after `.` and empty components
    // are dropped, so that `./C:/x` is refused like `C:/x`.
    let bytes = first.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Err(PathError::Absolute(shown(path)));
    }
    if let Some(reserved) = RESERVED_DIRS.iter().find(|r| first.eq_ignore_ascii_case(r)) {
        return Err(PathError::Reserved(shown(path), (*reserved).to_string()));
    }
    Ok(parts.join("/"))
}

/// Resolve a normalised relative path under `root` (which must be
/// canonical), refusing any symlink along the way that leads outside `root`,
/// and any walk that ends up inside a reserved folder (through a symlink to
/// the root, say). The final component need not exist.
pub fn resolve_in_root(root: &Path, rel: &str) -> Result<PathBuf, PathError> {
    let mut current = root.to_path_buf();
    for part in rel.split('/') {
        current.push(part);
        let exists = match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::canonicalize(&current)
                    .map_err(|_| PathError::SymlinkEscape(rel.to_string()))?;
                if !target.starts_with(root) {
                    return Err(PathError::SymlinkEscape(rel.to_string()));
                }
                current = target;
                true
            }
            Ok(_) => true,
            Err(_) => false,
        };
        // Checked at every step, not only at the first component: a symlink
        // to the root (or to any folder above a reserved one) must not lead
        // into host-private state.
        if let Some(reserved) = reserved_dir_of(root, &current) {
            return Err(PathError::Reserved(rel.to_string(), reserved.to_string()));
        }
        if !exists {
            // Missing from here on: nothing further can be a symlink, and
            // the top-level folder is already decided.
            break;
        }
    }
    let mut out = root.to_path_buf();
    out.push(rel);
    Ok(out)
}

/// The reserved top-level folder `path` (under `root`) lies in, if any.
fn reserved_dir_of(root: &Path, path: &Path) -> Option<&'static str> {
    let inner = path.strip_prefix(root).ok()?;
    let Some(Component::Normal(first)) = inner.components().next() else {
        return None;
    };
    let first = first.to_string_lossy();
    RESERVED_DIRS
        .iter()
        .find(|r| first.eq_ignore_ascii_case(r))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_accepts_and_cleans() {
        assert_eq!(normalize("src/./lib.rs").unwrap(), "src/lib.rs");
        assert_eq!(normalize("a//b/").unwrap(), "a/b");
        assert_eq!(normalize("héllo/ünï.txt").unwrap(), "héllo/ünï.txt");
    }

    #[test]
    fn long_paths_are_cut_in_messages() {
        assert_eq!(shown("a\0b"), "a\\u{0}b");
        assert_eq!(shown("cafe\u{301}"), "cafe\\u{301}");
        let long = shown(&"x".repeat(5000));
        assert!(long.starts_with("xxx") && long.ends_with("… (5000 bytes)"));
        assert!(long.len() < 200, "{}", long.len());
    }

    #[test]
    fn spelling_keys_fold_case_and_normalisation() {
        assert_eq!(spelling_key("A.txt"), spelling_key("a.txt"));
        assert_eq!(
            spelling_key("caf\u{e9}.txt"),
            spelling_key("cafe\u{301}.txt")
        );
        assert_eq!(spelling_key("Src/Main.RS"), "src/main.rs");
        assert_ne!(spelling_key("a.txt"), spelling_key("b.txt"));
    }

    #[test]
    fn normalize_rejects() {
        assert_eq!(normalize(""), Err(PathError::Empty));
        assert_eq!(normalize("./"), Err(PathError::Empty));
        assert!(matches!(
            normalize("/etc/passwd"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(normalize("C:/x"), Err(PathError::Absolute(_))));
        assert!(matches!(
            normalize("a/../../b"),
            Err(PathError::ParentDir(_))
        ));
        assert!(matches!(normalize(".."), Err(PathError::ParentDir(_))));
        assert!(matches!(normalize("a\0b"), Err(PathError::BadCharacter(_))));
        assert!(matches!(normalize("a\\b"), Err(PathError::BadCharacter(_))));
        assert!(matches!(
            normalize(".lockstep/lockstep.db"),
            Err(PathError::Reserved(..))
        ));
        assert!(matches!(
            normalize("./.git/config"),
            Err(PathError::Reserved(..))
        ));
        assert!(matches!(
            normalize(&"x".repeat(300)),
            Err(PathError::TooLong(300))
        ));
    }

    #[test]
    fn normalize_is_idempotent_after_dropping_dot_components() {
        // `./x:/y` once normalised to `x:/y`, which a second pass refused
        // as a drive prefix.
        assert!(matches!(normalize("./x:/y"), Err(PathError::Absolute(_))));
        assert!(matches!(normalize(".//C:/x"), Err(PathError::Absolute(_))));
        assert_eq!(normalize("src/C:/x").unwrap(), "src/C:/x");
        let clean = normalize("./src//C:").unwrap();
        assert_eq!(normalize(&clean).unwrap(), clean);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(project.path()).unwrap();
        std::fs::create_dir(root.join("src")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("src"), root.join("in")).unwrap();
        assert!(matches!(
            resolve_in_root(&root, "out/x"),
            Err(PathError::SymlinkEscape(_))
        ));
        assert!(resolve_in_root(&root, "in/x").is_ok());
        assert!(resolve_in_root(&root, "src/new/file").is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_to_the_root_do_not_reach_reserved_folders() {
        let project = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(project.path()).unwrap();
        std::fs::create_dir(root.join(".lockstep")).unwrap();
        std::fs::create_dir(root.join("src")).unwrap();
        std::os::unix::fs::symlink(".", root.join("self")).unwrap();
        std::os::unix::fs::symlink(".lockstep", root.join("priv")).unwrap();
        for rel in [
            "self/.lockstep/lockstep.db",
            "self/self/.lockstep",
            "self/.LockStep/self/config",
            "self/.git/config",
            "priv/x",
        ] {
            assert!(
                matches!(resolve_in_root(&root, rel), Err(PathError::Reserved(..))),
                "{rel}"
            );
        }
        assert!(resolve_in_root(&root, "self/src/lib.rs").is_ok());
        assert!(resolve_in_root(&root, "self/new/file").is_ok());
    }
}
