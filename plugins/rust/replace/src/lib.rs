//! `replace`: finds and replaces text in the project's files.
//!
//! Action params:
//! - `find` (required): the text to find, or a regular expression.
//! - `replace` (default empty): the replacement. With `regex = "true"` it may
//!   name capture groups (`$1`, `${name}`; `$$` is a literal `$`).
//! - `regex` (`"true"` or `"false"`, default `"false"`): whether `find` is a
//!   regular expression (syntax of the `regex` crate).
//! - `globs` (default `**/*`): comma-separated globs naming the files.
//!
//! The strategist proposes one step per UTF-8 file with at least one match;
//! the executor rewrites that file with every match replaced.

wit_bindgen::generate!({
    path: "../../../wit/v0.2.0",
    world: "plugin",
});

use std::borrow::Cow;
use std::collections::BTreeSet;

use exports::lockstep::plugin::{execution, strategy};
use lockstep::plugin::log::{log, Level};
use lockstep::plugin::types::{
    Action, Change, FileWrite, FsError, Param, PlanProposal, PluginError, Step, StepOutcome,
};
use lockstep::plugin::workspace;
use regex::Regex;

/// The plugin; it has no state between calls.
struct Replace;

export!(Replace);

/// The value of parameter `key`, if present.
fn param<'a>(params: &'a [Param], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Maps a refused workspace call on `what` to the plugin error to return.
fn fs_failure(what: &str, err: FsError) -> PluginError {
    match err {
        FsError::Invalid(m) => PluginError::InvalidInput(format!("{what}: {m}")),
        FsError::Io(m) => PluginError::Retryable(format!("{what}: {m}")),
        FsError::NotFound(m) => PluginError::Permanent(format!("{what}: not found: {m}")),
        FsError::Denied(m) => PluginError::Permanent(format!("{what}: denied: {m}")),
        FsError::TooLarge(cap) => {
            PluginError::Permanent(format!("{what}: larger than the read cap of {cap} bytes"))
        }
    }
}

/// What to look for.
enum Pattern {
    /// The text itself.
    Literal(String),
    /// A regular expression.
    Regex(Regex),
}

/// A find/replace request, parsed from action or step params.
struct Edit {
    pattern: Pattern,
    replacement: String,
}

impl Edit {
    /// Parses the `find`, `replace` and `regex` params.
    fn from_params(params: &[Param]) -> Result<Self, PluginError> {
        let find = param(params, "find")
            .filter(|f| !f.is_empty())
            .ok_or_else(|| PluginError::InvalidInput("param `find` is required".into()))?;
        let is_regex = match param(params, "regex").unwrap_or("false") {
            "true" => true,
            "false" => false,
            other => {
                return Err(PluginError::InvalidInput(format!(
                    "param `regex` must be \"true\" or \"false\", not {other:?}"
                )))
            }
        };
        let pattern = if is_regex {
            Pattern::Regex(Regex::new(find).map_err(|e| {
                PluginError::InvalidInput(format!("param `find` is not a valid regex: {e}"))
            })?)
        } else {
            Pattern::Literal(find.to_string())
        };
        let replacement = param(params, "replace").unwrap_or_default().to_string();
        Ok(Self {
            pattern,
            replacement,
        })
    }

    /// How many matches `text` has.
    fn count(&self, text: &str) -> usize {
        match &self.pattern {
            Pattern::Literal(s) => text.matches(s.as_str()).count(),
            Pattern::Regex(re) => re.find_iter(text).count(),
        }
    }

    /// `text` with every match replaced.
    fn apply<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.pattern {
            Pattern::Literal(s) if text.contains(s.as_str()) => {
                Cow::Owned(text.replace(s.as_str(), &self.replacement))
            }
            Pattern::Literal(_) => Cow::Borrowed(text),
            Pattern::Regex(re) => re.replace_all(text, self.replacement.as_str()),
        }
    }
}

/// "1 match", "2 matches".
fn n_matches(n: usize) -> String {
    format!("{n} match{}", if n == 1 { "" } else { "es" })
}

/// The sorted, de-duplicated files matching any of the comma-separated `globs`.
fn list_files(globs: &str) -> Result<BTreeSet<String>, PluginError> {
    let mut files = BTreeSet::new();
    for glob in globs.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let found = workspace::list(glob).map_err(|e| fs_failure(glob, e))?;
        log(Level::Debug, &format!("{glob}: {} files", found.len()));
        files.extend(found);
    }
    Ok(files)
}

/// Reads `path` as UTF-8 text. The inner `Err` says why the file cannot be
/// edited as text (not UTF-8, or over the host's read cap).
fn read_text(path: &str) -> Result<Result<String, String>, PluginError> {
    match workspace::read(path) {
        Ok(bytes) => Ok(String::from_utf8(bytes).map_err(|_| format!("{path}: not UTF-8 text"))),
        Err(FsError::TooLarge(cap)) => Ok(Err(format!("{path}: larger than {cap} bytes"))),
        Err(e) => Err(fs_failure(path, e)),
    }
}

impl strategy::Guest for Replace {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let edit = Edit::from_params(&action.params)?;
        let files = list_files(param(&action.params, "globs").unwrap_or("**/*"))?;

        let mut steps = Vec::new();
        let mut total = 0;
        for path in &files {
            let text = match read_text(path)? {
                Ok(text) => text,
                Err(why) => {
                    log(Level::Debug, &format!("skipping {why}"));
                    continue;
                }
            };
            let n = edit.count(&text);
            if n == 0 {
                continue;
            }
            total += n;
            let mut params = vec![("path".to_string(), path.clone())];
            params.extend(
                action
                    .params
                    .iter()
                    .filter(|(k, _)| matches!(k.as_str(), "find" | "replace" | "regex"))
                    .cloned(),
            );
            steps.push(Step {
                id: format!("file-{}", steps.len() + 1),
                title: format!("Replace {} in {path}", n_matches(n)),
                params,
                targets: vec![path.clone()],
            });
        }

        let find = param(&action.params, "find").unwrap_or_default();
        let summary = format!(
            "Replace {find:?} in {} of {} files ({})",
            steps.len(),
            files.len(),
            n_matches(total)
        );
        log(Level::Info, &summary);
        Ok(PlanProposal { summary, steps })
    }
}

impl execution::Guest for Replace {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        let path = param(&step.params, "path")
            .ok_or_else(|| PluginError::InvalidInput("step param `path` is required".into()))?;
        let edit = Edit::from_params(&step.params)?;
        let text = read_text(path)?.map_err(PluginError::Permanent)?;

        let n = edit.count(&text);
        let changes = match edit.apply(&text) {
            Cow::Owned(new) if new != text => vec![Change::Write(FileWrite {
                path: path.to_string(),
                contents: new.into_bytes(),
            })],
            _ => Vec::new(),
        };
        let summary = if changes.is_empty() {
            format!("{path} unchanged ({})", n_matches(n))
        } else {
            format!("Replaced {} in {path}", n_matches(n))
        };
        log(Level::Info, &summary);
        Ok(StepOutcome { changes, summary })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(find: &str, replace: &str, regex: &str) -> Result<Edit, PluginError> {
        Edit::from_params(&[
            ("find".into(), find.into()),
            ("replace".into(), replace.into()),
            ("regex".into(), regex.into()),
        ])
    }

    #[test]
    fn literal_replaces_every_match() {
        let e = edit("a.b", "X", "false").unwrap();
        assert_eq!(e.count("a.b axb a.b"), 2);
        assert_eq!(e.apply("a.b axb a.b"), "X axb X");
        assert!(matches!(e.apply("none"), Cow::Borrowed(_)));
    }

    #[test]
    fn regex_expands_groups() {
        let e = edit(r"(\w+)@(\w+)", "$2 at $1", "true").unwrap();
        assert_eq!(e.apply("me@home"), "home at me");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(
            matches!(edit("(", "", "true"), Err(PluginError::InvalidInput(m)) if m.contains("regex"))
        );
        assert!(matches!(
            edit("x", "", "yes"),
            Err(PluginError::InvalidInput(_))
        ));
        assert!(matches!(
            edit("", "", "false"),
            Err(PluginError::InvalidInput(_))
        ));
    }
}
