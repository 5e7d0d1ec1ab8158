//! `{{name}}`: upper-cases TODO and FIXME markers in text files.
//!
//! Action params:
//! - `globs` (default `**/*`): comma-separated globs naming the files.
//! - `markers` (default `TODO,FIXME`): comma-separated marker words.
//!
//! The strategist reads every matching file and proposes one step per UTF-8
//! file with a marker written in another case (`todo:`, `Fixme:`); the
//! executor rewrites that file with the markers upper-cased. The text logic
//! is in `markers.rs`, which `cargo test` covers on this machine. The
//! bindings and helpers come from `lockstep-sdk/` (the lockstep SDK).

mod markers;

use lockstep_sdk::prelude::*;

/// The plugin; it keeps no state between calls (each call gets a fresh
/// instance).
struct Plugin;

lockstep_sdk::export!(Plugin);

impl Strategy for Plugin {
    fn strategize(_plan_id: String, action: Action) -> Result<PlanProposal, PluginError> {
        let params = Params::new(&action.params);
        let markers = markers::parse_markers(params.get("markers"))?;
        let files = list_files(params.list("globs", markers::DEFAULT_GLOBS))?;

        let mut steps = Vec::new();
        for path in &files {
            let Some(text) = read_text_or_skip(path)? else {
                continue;
            };
            if markers::upper_case_markers(&text, &markers).is_none() {
                continue;
            }
            // The executor only receives the step: copy what it needs.
            steps.push(
                Step::new(
                    format!("file-{}", steps.len() + 1),
                    format!("Upper-case markers in {path}"),
                )
                .param("path", path)
                .param("markers", markers.join(","))
                .target(path),
            );
        }

        let summary = format!(
            "{} of {} have markers to upper-case ({})",
            steps.len(),
            count(files.len(), "file", "files"),
            markers.join(", ")
        );
        Ok(PlanProposal { summary, steps })
    }
}

impl Execution for Plugin {
    fn execute(_plan_id: String, step: Step) -> Result<StepOutcome, PluginError> {
        let params = Params::new(&step.params);
        let path = params.required("path")?;
        let markers = markers::parse_markers(params.get("markers"))?;
        // Reads see the changes of earlier steps of the same plan.
        let text = read_text(path)?;
        let Some(new) = markers::upper_case_markers(&text, &markers) else {
            return Ok(StepOutcome::unchanged(format!(
                "{path} has no markers to upper-case"
            )));
        };
        Ok(StepOutcome::new(
            vec![write_text(path, new)],
            format!("Upper-cased the markers in {path}"),
        ))
    }
}
