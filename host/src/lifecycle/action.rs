//! Action files: TOML with `name`, `strategy`, `executor` and a `[params]`
//! table of strings; and [`ActionError`], why an action cannot become a plan.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::PluginError;
use crate::model::Action;
use crate::workspace::ProjectDirError;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionFile {
    name: String,
    strategy: String,
    executor: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

/// Which of an action's two plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginRole {
    /// The `strategy` plugin (Strategize).
    Strategy,
    /// The `executor` plugin (Execute).
    Executor,
}

impl fmt::Display for PluginRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginRole::Strategy => "strategy",
            PluginRole::Executor => "executor",
        })
    }
}

/// Where in an action file something is wrong: the file (when read from
/// one), the line and the column (1-based), each when known. Shown as
/// `FILE: line L, column C: `.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The action file.
    pub file: Option<PathBuf>,
    /// The line.
    pub line: Option<usize>,
    /// The column.
    pub column: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: "),
            (Some(line), None) => write!(f, "line {line}: "),
            _ => Ok(()),
        }
    }
}

/// Why an action cannot become a plan: the file, its contents, the project
/// directory, or a plugin it names.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The action file could not be read.
    #[error("cannot read `{}`: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML, or a field is missing, unknown or of
    /// the wrong type, in the TOML reader's own words. (`error` is not a
    /// `source`: its own text repeats the line with a caret, which `at`
    /// already says.)
    #[error("{at}{}", .error.message())]
    Syntax {
        /// Where.
        at: Location,
        /// The TOML reader's error.
        error: toml::de::Error,
    },
    /// A required field is empty.
    #[error("{at}field `{field}` must not be empty")]
    Empty {
        /// Where (the file, when read from one).
        at: Location,
        /// The field.
        field: &'static str,
    },
    /// The project directory cannot be resolved, or is not a directory.
    #[error(transparent)]
    Project(#[from] ProjectDirError),
    /// The action names a plugin that cannot be found or loaded.
    #[error("{role} `{name}`: {source}")]
    Plugin {
        /// Which of the action's plugins.
        role: PluginRole,
        /// The name the action gives.
        name: String,
        /// Why it cannot be used.
        #[source]
        source: PluginError,
    },
}

impl ActionError {
    /// The same error, located in `file`.
    fn in_file(mut self, file: &Path) -> Self {
        if let ActionError::Syntax { at, .. } | ActionError::Empty { at, .. } = &mut self {
            at.file = Some(file.to_path_buf());
        }
        self
    }
}

/// The 1-based line and column of byte `offset` in `source`.
fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Parse an action file. Errors name the line, column and field.
pub fn parse_action(source: &str) -> Result<Action, ActionError> {
    let file: ActionFile = toml::from_str(source).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => {
                let (line, column) = line_and_column(source, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        ActionError::Syntax {
            at: Location {
                file: None,
                line,
                column,
            },
            error: e,
        }
    })?;
    for (field, value) in [
        ("name", &file.name),
        ("strategy", &file.strategy),
        ("executor", &file.executor),
    ] {
        if value.trim().is_empty() {
            let at = Location::default();
            return Err(ActionError::Empty { at, field });
        }
    }
    Ok(Action {
        name: file.name,
        strategy: file.strategy,
        executor: file.executor,
        params: file.params,
    })
}

/// Read and parse the action file at `path`; errors name the file too.
pub fn read_action(path: &Path) -> Result<Action, ActionError> {
    let source = std::fs::read_to_string(path).map_err(|source| ActionError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_action(&source).map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_action() {
        let a =
            parse_action("name = \"x\"\nstrategy = \"s\"\nexecutor = \"e\"\n[params]\nk = \"v\"\n")
                .unwrap();
        assert_eq!(a.params["k"], "v");
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = parse_action("name = \"x\"\nstrategy = \"s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("executor"), "{e}");
        let e = parse_action("name = \"x\"\nstrategy = \"s\"\nexecutor = \"e\"\n[params]\nk = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 5"), "{e}");
        let e = parse_action("name = \"x\"\nstrategy = 1\nexecutor = \"e\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 2") && e.contains("string"), "{e}");
        let e = parse_action("name = \"x\"\nstrategy = \"s\"\nexecutor = \"e\"\nextra = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
        assert!(
            parse_action("name = \"\"\nstrategy = \"s\"\nexecutor = \"e\"\n")
                .unwrap_err()
                .to_string()
                .contains("name")
        );
    }

    #[test]
    fn a_read_error_names_file_line_and_column_and_keeps_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "name = \"x\"\nstrategy = 1\nexecutor = \"e\"\n").unwrap();
        let e = read_action(&path).unwrap_err();
        let ActionError::Syntax { at, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!((at.line, at.column), (Some(2), Some(12)));
        assert!(
            e.to_string()
                .starts_with(&format!("{}: line 2, column 12: ", path.display())),
            "{e}"
        );
        let missing = dir.path().join("missing.toml");
        let e = read_action(&missing).unwrap_err();
        let source = std::error::Error::source(&e).expect("the io::Error is kept");
        let io = source.downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        let e = parse_action("name = \" \"\nstrategy = \"s\"\nexecutor = \"e\"\n").unwrap_err();
        assert!(matches!(e, ActionError::Empty { field: "name", .. }), "{e}");
    }
}
