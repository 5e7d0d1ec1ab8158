//! `{{name}}`: upper-cases TODO and FIXME markers in text files.
//!
//! Action params:
//! - `globs` (default `**/*`): comma-separated globs naming the files.
//! - `markers` (default `TODO,FIXME`): comma-separated marker words.
//!
//! The strategist reads every matching file and proposes one step per UTF-8
//! file with a marker written in another case (`todo:`, `Fixme:`); the
//! executor rewrites that file with the markers upper-cased. The text logic
//! is in `markers.rs`, which `cargo test` covers on this machine.

wit_bindgen::generate!({
    path: "wit",
    world: "plugin",
});

mod markers;

use std::collections::BTreeSet;

use exports::lockstep::plugin::{execution, strategy};
use lockstep::plugin::log::{log, Level};
use lockstep::plugin::types::{
    Action, Change, FileWrite, FsError, Param, PlanProposal, PluginError, Step, StepOutcome,
};
use lockstep::plugin::workspace;

/// The plugin; it keeps no state between calls (each call gets a fresh
/// instance).
struct Plugin;

export!(Plugin);

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

/// `path` as text; the inner `Err` says why it cannot be edited as text
/// (not UTF-8, or over the host's read cap).
fn read_text(path: &str) -> Result<Result<String, String>, PluginError> {
    match workspace::read(path) {
        Ok(bytes) => Ok(String::from_utf8(bytes).map_err(|_| format!("{path}: not UTF-8 text"))),
        Err(FsError::TooLarge(cap)) => Ok(Err(format!("{path}: larger than {cap} bytes"))),
        Err(e) => Err(fs_failure(path, e)),
    }
}

impl strategy::Guest for Plugin {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let markers = markers::parse_markers(param(&action.params, "markers"))
            .map_err(PluginError::InvalidInput)?;
        let mut files = BTreeSet::new();
        for glob in markers::split_globs(param(&action.params, "globs")) {
            let found = workspace::list(glob).map_err(|e| fs_failure(glob, e))?;
            log(
                Level::Debug,
                &format!("{glob}: {}", markers::files(found.len())),
            );
            files.extend(found);
        }

        let mut steps = Vec::new();
        for path in &files {
            let text = match read_text(path)? {
                Ok(text) => text,
                Err(why) => {
                    log(Level::Debug, &format!("skipping {why}"));
                    continue;
                }
            };
            if markers::upper_case_markers(&text, &markers).is_none() {
                continue;
            }
            // The executor only receives the step: copy what it needs.
            steps.push(Step {
                id: format!("file-{}", steps.len() + 1),
                title: format!("Upper-case markers in {path}"),
                params: vec![
                    ("path".into(), path.clone()),
                    ("markers".into(), markers.join(",")),
                ],
                targets: vec![path.clone()],
            });
        }

        let summary = format!(
            "{} of {} have markers to upper-case ({})",
            steps.len(),
            markers::files(files.len()),
            markers.join(", ")
        );
        log(Level::Info, &summary);
        Ok(PlanProposal { summary, steps })
    }
}

impl execution::Guest for Plugin {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        let path = param(&step.params, "path")
            .ok_or_else(|| PluginError::InvalidInput("step param `path` is required".into()))?;
        let markers = markers::parse_markers(param(&step.params, "markers"))
            .map_err(PluginError::InvalidInput)?;
        // Reads see the changes of earlier steps of the same plan.
        let text = read_text(path)?.map_err(PluginError::Permanent)?;
        let Some(new) = markers::upper_case_markers(&text, &markers) else {
            return Ok(StepOutcome {
                changes: Vec::new(),
                summary: format!("{path} has no markers to upper-case"),
            });
        };
        Ok(StepOutcome {
            changes: vec![Change::Write(FileWrite {
                path: path.to_string(),
                contents: new.into_bytes(),
            })],
            summary: format!("Upper-cased the markers in {path}"),
        })
    }
}
