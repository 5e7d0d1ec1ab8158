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

use std::borrow::Cow;

use lockstep_sdk::prelude::*;
use regex::Regex;

/// The plugin; it has no state between calls.
struct Replace;

lockstep_sdk::export!(Replace);

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
    fn from_params(params: &Params) -> Result<Self, PluginError> {
        let find = params
            .get("find")
            .filter(|f| !f.is_empty())
            .ok_or_else(|| PluginError::InvalidInput("param `find` is required".into()))?;
        let pattern = if params.flag("regex", false)? {
            Pattern::Regex(Regex::new(find).map_err(|e| {
                PluginError::InvalidInput(format!("param `find` is not a valid regex: {e}"))
            })?)
        } else {
            Pattern::Literal(find.to_string())
        };
        let replacement = params.get_or("replace", "").to_string();
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
    count(n, "match", "matches")
}

impl Strategy for Replace {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let params = Params::new(&action.params);
        let edit = Edit::from_params(&params)?;
        let files = list_files(params.list("globs", "**/*"))?;

        let mut steps = Vec::new();
        let mut total = 0;
        for path in &files {
            let Some(text) = read_text_or_skip(path)? else {
                continue;
            };
            let n = edit.count(&text);
            if n == 0 {
                continue;
            }
            total += n;
            steps.push(
                Step::new(
                    format!("file-{}", steps.len() + 1),
                    format!("Replace {} in {path}", n_matches(n)),
                )
                .param("path", path)
                .params(params.pick(&["find", "replace", "regex"]))
                .target(path),
            );
        }

        let find = params.get_or("find", "");
        let summary = format!(
            "Replace {find:?} in {} of {} files ({})",
            steps.len(),
            files.len(),
            n_matches(total)
        );
        Ok(PlanProposal { summary, steps })
    }
}

impl Execution for Replace {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        let params = Params::new(&step.params);
        let path = params.required("path")?;
        let edit = Edit::from_params(&params)?;
        let text = read_text(path)?;

        let n = edit.count(&text);
        let changes = match edit.apply(&text) {
            Cow::Owned(new) if new != text => vec![write_text(path, new)],
            _ => Vec::new(),
        };
        let summary = if changes.is_empty() {
            format!("{path} unchanged ({})", n_matches(n))
        } else {
            format!("Replaced {} in {path}", n_matches(n))
        };
        Ok(StepOutcome::new(changes, summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(find: &str, replace: &str, regex: &str) -> Result<Edit, PluginError> {
        Edit::from_params(&Params::new(&[
            ("find".into(), find.into()),
            ("replace".into(), replace.into()),
            ("regex".into(), regex.into()),
        ]))
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
