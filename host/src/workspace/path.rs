//! Project-relative path rules shared by reads, changesets and apply.
//!
//! A path a plugin names must be relative, use `/` separators, contain no
//! `..`, no NUL, no backslash, and no component that names host-private
//! state (`.lockstep`) or a version-control directory (`.git`, `.hg`,
//! `.svn`, `.jj`), at any depth and in any spelling (see [`is_reserved`]).
//! Symlinks are refused on the real filesystem by the directory handles of
//! [`super::tree`], which never follow one. [`spelling_key`] says which
//! names one case-insensitive, normalising filesystem would take for the
//! same file.

use unicode_normalization::UnicodeNormalization;

/// Longest accepted project-relative path, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest accepted single path component, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;
/// Directory names no plugin may read, list or change, at any depth of the
/// project: the host's own state and every version-control directory
/// (a vendored `vendor/x/.git/` holds hooks that run on the next commit).
pub const RESERVED_DIRS: &[&str] = &[".lockstep", ".git", ".hg", ".svn", ".jj"];
/// Longest rendering of a path in an error message, in characters.
const SHOWN_PATH_CHARS: usize = 160;

/// `path` as error messages show it: control and non-ASCII characters
/// escaped (so that `é` and `e` + a combining accent look different), cut
/// to 160 characters with the full length noted.
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
    /// Has a component reserved for the host or version control
    /// ([`RESERVED_DIRS`], at any depth, in any spelling).
    #[error("`{0}` is inside `{1}/`, which belongs to the host or to version control; no plugin may read or change it")]
    Reserved(String, String),
    /// A component is a symlink on disk. Symlinks in a project are never
    /// followed: one could lead outside the project or into a reserved
    /// directory.
    #[error("`{0}` goes through a symlink; lockstep never follows symlinks in a project, so that no read or write can leave it (name the file the link points to instead)")]
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
    if let Some(reserved) = parts.iter().find_map(|p| is_reserved(p)) {
        return Err(PathError::Reserved(shown(path), reserved.to_string()));
    }
    Ok(parts.join("/"))
}

/// The entry of [`RESERVED_DIRS`] that the single path component `name` is
/// a spelling of, if any: compared after NFC normalisation and case
/// folding (as [`spelling_key`] does), so `.GIT`, `.Git` and `.LockStep`
/// are reserved too — on macOS and Windows they are the same directory.
pub fn is_reserved(name: &str) -> Option<&'static str> {
    // Cheap filter first: every reserved name starts with a dot and is short.
    if !name.starts_with('.') || name.len() > 64 {
        return None;
    }
    let key = spelling_key(name);
    RESERVED_DIRS.iter().find(|r| key == **r).copied()
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

    #[test]
    fn reserved_names_are_refused_at_every_depth_in_any_case() {
        for path in [
            ".git/config",
            "vendor/x/.git/config",
            "vendor/x/.git/hooks/pre-commit",
            "a/.GIT/HEAD",
            "a/b/.Git",
            "deep/.lockstep/lockstep.db",
            "x/.LockStep/y",
            "sub/.hg/hgrc",
            "sub/.HG",
            "old/.svn/entries",
            "j/.jj/repo/store",
            "j/.JJ",
            // U+212A KELVIN SIGN folds to `k`: on a case-insensitive
            // filesystem this is `.lockstep`.
            "x/.loc\u{212a}step/db",
            "./a//.git/./config",
        ] {
            assert!(
                matches!(normalize(path), Err(PathError::Reserved(..))),
                "{path:?} was accepted"
            );
        }
        assert_eq!(
            normalize("vendor/x/.git/config").unwrap_err(),
            PathError::Reserved("vendor/x/.git/config".into(), ".git".into())
        );
        // Names that only look alike are ordinary files.
        for path in [
            ".gitignore",
            "a/.github/workflows/ci.yml",
            "git/config",
            "x/.git.bak",
            "x/.lockstep-notes",
            "x/.hgignore",
            "x/.jjx",
        ] {
            assert_eq!(normalize(path).unwrap(), path);
        }
        assert_eq!(is_reserved(".Svn"), Some(".svn"));
        assert_eq!(is_reserved("svn"), None);
    }
}
