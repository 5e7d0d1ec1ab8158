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

use lockstep_sdk::prelude::*;

/// The plugin; it has no state between calls.
struct LicenseHeader;

lockstep_sdk::export!(LicenseHeader);

/// The header to add, as its commented lines (without line endings).
#[derive(Debug)]
struct Header {
    lines: Vec<String>,
}

impl Header {
    /// Builds the header from the `header` and `comment` params.
    fn from_params(params: &Params) -> Result<Self, PluginError> {
        let text = params
            .required("header")?
            .trim_matches(|c| c == '\n' || c == '\r');
        let prefix = params.get_or("comment", "// ");
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

impl Strategy for LicenseHeader {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let params = Params::new(&action.params);
        let header = Header::from_params(&params)?;
        let files = list_files(params.list("globs", "**/*.rs"))?;

        let mut steps = Vec::new();
        for path in &files {
            let Some(text) = read_text_or_skip(path)? else {
                continue;
            };
            if header.is_in(&text) {
                continue;
            }
            steps.push(
                Step::new(
                    format!("file-{}", steps.len() + 1),
                    format!("Add license header to {path}"),
                )
                .param("path", path)
                .params(params.pick(&["header", "comment"]))
                .target(path),
            );
        }

        let summary = format!(
            "Add the license header to {} of {} files",
            steps.len(),
            files.len()
        );
        Ok(PlanProposal { summary, steps })
    }
}

impl Execution for LicenseHeader {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        let params = Params::new(&step.params);
        Header::from_params(&params)?.add_to(params.required("path")?)
    }
}

impl Header {
    /// The step's outcome: `path` with the header added, or unchanged if it
    /// has it already (an earlier run, or an earlier step, added it).
    fn add_to(&self, path: &str) -> Result<StepOutcome, PluginError> {
        let text = read_text(path)?;
        if self.is_in(&text) {
            info!("{path} already has the header");
            return Ok(StepOutcome::unchanged(format!(
                "{path} already has the license header"
            )));
        }
        info!("adding the header to {path}");
        Ok(StepOutcome::new(
            vec![write_text(path, self.prepend_to(&text))],
            format!("Added the license header to {path}"),
        ))
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
        Header::from_params(&Params::new(&params)).unwrap()
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
