//! `license-header`: adds a license header to every file that lacks one.
//!
//! Action params:
//! - `header` (required): the header text, possibly several lines.
//! - `globs` (default `**/*.rs`): comma-separated globs naming the files.
//! - `comment` (default `// `): the prefix put before each header line; an
//!   empty header line becomes the prefix with trailing spaces trimmed.
//!
//! The strategist proposes one step per file whose first lines (after an
//! optional shebang line) are not the commented header. The executor
//! prepends the commented header and a blank line, keeping a shebang line
//! (`#!...`, but not a Rust `#![...]` attribute) and a byte-order mark first,
//! and changes nothing if the header is already there.

wit_bindgen::generate!({
    path: "../../../wit/v0.2.0",
    world: "plugin",
});

use std::collections::BTreeSet;

use exports::lockstep::plugin::{execution, strategy};
use lockstep::plugin::log::{log, Level};
use lockstep::plugin::types::{
    Action, Change, FileWrite, FsError, Param, PlanProposal, PluginError, Step, StepOutcome,
};
use lockstep::plugin::workspace;

/// The plugin; it has no state between calls.
struct LicenseHeader;

export!(LicenseHeader);

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

/// The header to add, as its commented lines (without line endings).
#[derive(Debug)]
struct Header {
    lines: Vec<String>,
}

impl Header {
    /// Builds the header from the `header` and `comment` params.
    fn from_params(params: &[Param]) -> Result<Self, PluginError> {
        let text = param(params, "header")
            .map(|h| h.trim_matches(|c| c == '\n' || c == '\r'))
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| PluginError::InvalidInput("param `header` is required".into()))?;
        let prefix = param(params, "comment").unwrap_or("// ");
        let lines = text
            .lines()
            .map(|line| {
                if line.trim().is_empty() {
                    prefix.trim_end().to_string()
                } else {
                    format!("{prefix}{line}")
                }
            })
            .collect();
        Ok(Self { lines })
    }

    /// Whether `text` already starts with this header (after its preamble).
    /// Trailing whitespace is ignored on both sides.
    fn is_in(&self, text: &str) -> bool {
        let mut lines = split_preamble(text).1.lines();
        self.lines.iter().all(|want| {
            lines
                .next()
                .is_some_and(|have| have.trim_end() == want.trim_end())
        })
    }

    /// `text` with the header and a blank line inserted after its preamble. Uses the file's own line ending.
    fn prepend_to(&self, text: &str) -> String {
        let eol = match text.find('\n') {
            Some(i) if text[..i].ends_with('\r') => "\r\n",
            _ => "\n",
        };
        let (preamble, rest) = split_preamble(text);
        let mut out = String::with_capacity(text.len() + 256);
        out.push_str(preamble);
        if preamble.starts_with("#!") && !preamble.ends_with('\n') {
            out.push_str(eol);
        }
        for line in &self.lines {
            out.push_str(line);
            out.push_str(eol);
        }
        out.push_str(eol);
        out.push_str(rest);
        out
    }
}

/// Splits `text` into what must stay before the header and the rest. The
/// preamble is a byte-order mark and a shebang line (`#!`, but not a Rust
/// inner attribute `#![...]`), each if present.
fn split_preamble(text: &str) -> (&str, &str) {
    let bom = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let after_bom = &text[bom..];
    let end = if after_bom.starts_with("#!") && !after_bom.starts_with("#![") {
        after_bom.find('\n').map_or(text.len(), |i| bom + i + 1)
    } else {
        bom
    };
    text.split_at(end)
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

impl strategy::Guest for LicenseHeader {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let header = Header::from_params(&action.params)?;
        let files = list_files(param(&action.params, "globs").unwrap_or("**/*.rs"))?;

        let mut steps = Vec::new();
        for path in &files {
            let text = match read_text(path)? {
                Ok(text) => text,
                Err(why) => {
                    log(Level::Warn, &format!("skipping {why}"));
                    continue;
                }
            };
            if header.is_in(&text) {
                continue;
            }
            let mut params = vec![("path".to_string(), path.clone())];
            params.extend(
                action
                    .params
                    .iter()
                    .filter(|(k, _)| k == "header" || k == "comment")
                    .cloned(),
            );
            steps.push(Step {
                id: format!("file-{}", steps.len() + 1),
                title: format!("Add license header to {path}"),
                params,
                targets: vec![path.clone()],
            });
        }

        let summary = format!(
            "Add the license header to {} of {} files",
            steps.len(),
            files.len()
        );
        log(Level::Info, &summary);
        Ok(PlanProposal { summary, steps })
    }
}

impl execution::Guest for LicenseHeader {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        let path = param(&step.params, "path")
            .ok_or_else(|| PluginError::InvalidInput("step param `path` is required".into()))?;
        let header = Header::from_params(&step.params)?;
        let text = read_text(path)?.map_err(PluginError::Permanent)?;

        if header.is_in(&text) {
            log(Level::Info, &format!("{path} already has the header"));
            return Ok(StepOutcome {
                changes: Vec::new(),
                summary: format!("{path} already has the license header"),
            });
        }
        log(Level::Info, &format!("adding the header to {path}"));
        Ok(StepOutcome {
            changes: vec![Change::Write(FileWrite {
                path: path.to_string(),
                contents: header.prepend_to(&text).into_bytes(),
            })],
            summary: format!("Added the license header to {path}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str, comment: Option<&str>) -> Header {
        let mut params = vec![("header".to_string(), text.to_string())];
        if let Some(c) = comment {
            params.push(("comment".into(), c.into()));
        }
        Header::from_params(&params).unwrap()
    }

    #[test]
    fn comments_each_line_and_trims_blank_ones() {
        let h = header("Copyright X\n\nApache-2.0\n", None);
        assert_eq!(h.lines, ["// Copyright X", "//", "// Apache-2.0"]);
    }

    #[test]
    fn prepends_after_shebang_and_detects_it_afterwards() {
        let h = header("Copyright X", Some("# "));
        let out = h.prepend_to("#!/bin/sh\necho hi\n");
        assert_eq!(out, "#!/bin/sh\n# Copyright X\n\necho hi\n");
        assert!(h.is_in(&out));
        assert!(!h.is_in("echo hi\n"));
    }

    #[test]
    fn inner_attributes_are_not_shebangs() {
        let h = header("A", None);
        assert_eq!(h.prepend_to("#![no_std]\n"), "// A\n\n#![no_std]\n");
        assert_eq!(h.prepend_to("#!/bin/sh"), "#!/bin/sh\n// A\n\n");
        assert_eq!(h.prepend_to("\u{feff}x\n"), "\u{feff}// A\n\nx\n");
    }

    #[test]
    fn keeps_crlf_line_endings() {
        let h = header("A", None);
        assert_eq!(h.prepend_to("x\r\ny\r\n"), "// A\r\n\r\nx\r\ny\r\n");
    }
}
