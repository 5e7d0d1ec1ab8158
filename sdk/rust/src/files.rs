//! Reading the project through the `workspace` import, and the changes an
//! executor returns.

use std::collections::BTreeSet;

use crate::lockstep::plugin::workspace;
use crate::{Change, FileWrite, FsError, PluginError};

/// Why [`read_text`] returned no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// The file is not UTF-8 text; the message names it. A strategist
    /// usually skips such a file ([`read_text_or_skip`]); `?` turns it into
    /// a `permanent` error.
    NotText(String),
    /// The file is larger than the host's read cap; the message names it
    /// and the cap. Skipped and turned into an error like `NotText`.
    TooLarge(String),
    /// The host refused the read for another reason (not found, denied, an
    /// I/O error), already mapped to the plugin error to return.
    Failed(PluginError),
}

impl From<TextError> for PluginError {
    fn from(e: TextError) -> Self {
        match e {
            TextError::NotText(why) | TextError::TooLarge(why) => PluginError::Permanent(why),
            TextError::Failed(e) => e,
        }
    }
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::NotText(why) | TextError::TooLarge(why) => f.write_str(why),
            TextError::Failed(e) => write!(f, "{e:?}"),
        }
    }
}

impl std::error::Error for TextError {}

/// `path` as UTF-8 text. During Execute, reads see the changes of earlier
/// steps of the same plan.
pub fn read_text(path: &str) -> Result<String, TextError> {
    match workspace::read(path) {
        Ok(bytes) => decode(path, bytes),
        Err(FsError::TooLarge(cap)) => Err(TextError::TooLarge(format!(
            "{path}: larger than the read cap of {cap} bytes"
        ))),
        Err(e) => Err(TextError::Failed(PluginError::from_fs(path, e))),
    }
}

/// `path` as UTF-8 text, or `None` when it is not a text file: not UTF-8
/// (logged at `debug`) or over the host's read cap (logged at `warn`), what
/// a strategist skips. Other refusals are the error to return.
pub fn read_text_or_skip(path: &str) -> Result<Option<String>, PluginError> {
    match read_text(path) {
        Ok(text) => Ok(Some(text)),
        Err(TextError::NotText(why)) => {
            crate::debug!("skipping {why}");
            Ok(None)
        }
        Err(TextError::TooLarge(why)) => {
            crate::warn!("skipping {why}");
            Ok(None)
        }
        Err(TextError::Failed(e)) => Err(e),
    }
}

/// `bytes` read from `path` as text, or why not.
fn decode(path: &str, bytes: Vec<u8>) -> Result<String, TextError> {
    String::from_utf8(bytes).map_err(|_| TextError::NotText(format!("{path}: not UTF-8 text")))
}

/// The contents of `path`; a refusal is mapped with
/// [`PluginError::from_fs`].
pub fn read_bytes(path: &str) -> Result<Vec<u8>, PluginError> {
    workspace::read(path).map_err(|e| PluginError::from_fs(path, e))
}

/// The files matching any of `globs`, sorted and without repeats. A
/// malformed glob is `invalid-input`; a glob matching more files than the
/// host lists at once (100 000 by default) is `permanent`.
pub fn list_files<'g>(
    globs: impl IntoIterator<Item = &'g str>,
) -> Result<BTreeSet<String>, PluginError> {
    let mut files = BTreeSet::new();
    for glob in globs {
        let found = workspace::list(glob).map_err(|e| list_failure(glob, e))?;
        crate::debug!("{glob}: {}", crate::count(found.len(), "file", "files"));
        files.extend(found);
    }
    Ok(files)
}

/// The plugin error for a refused `list` of `glob`: past the host's cap on
/// entries the whole call is refused, which `too-large` says.
fn list_failure(glob: &str, err: FsError) -> PluginError {
    match err {
        FsError::TooLarge(cap) => PluginError::Permanent(format!(
            "{glob}: matches more than {cap} files, the most one list returns; use narrower globs"
        )),
        e => PluginError::from_fs(glob, e),
    }
}

/// A change that replaces (or creates) `path` with `text`, as UTF-8.
pub fn write_text(path: impl Into<String>, text: impl Into<String>) -> Change {
    write_bytes(path, text.into().into_bytes())
}

/// A change that replaces (or creates) `path` with `bytes`.
pub fn write_bytes(path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Change {
    Change::Write(FileWrite {
        path: path.into(),
        contents: bytes.into(),
    })
}

/// A change that deletes `path`.
pub fn delete(path: impl Into<String>) -> Change {
    Change::Delete(path.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_is_not_utf8_says_so_and_is_permanent_with_question_mark() {
        assert_eq!(decode("a", b"ok".to_vec()), Ok("ok".into()));
        let e = decode("b.bin", vec![0xff]).unwrap_err();
        assert_eq!(e, TextError::NotText("b.bin: not UTF-8 text".into()));
        assert_eq!(
            PluginError::from(e),
            PluginError::Permanent("b.bin: not UTF-8 text".into())
        );
    }

    #[test]
    fn a_list_past_the_cap_says_so() {
        assert_eq!(
            list_failure("**/*", FsError::TooLarge(100_000)),
            PluginError::Permanent(
                "**/*: matches more than 100000 files, the most one list returns; \
                 use narrower globs"
                    .into()
            )
        );
    }

    #[test]
    fn changes_carry_bytes() {
        assert_eq!(
            write_text("a", "é"),
            Change::Write(FileWrite {
                path: "a".into(),
                contents: "é".as_bytes().to_vec()
            })
        );
        assert_eq!(delete("a"), Change::Delete("a".into()));
    }
}
