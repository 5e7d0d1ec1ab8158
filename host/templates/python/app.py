"""`{{name}}`: upper-cases TODO and FIXME markers in text files.

Action params:
- `globs` (default `**/*`): comma-separated globs naming the files.
- `markers` (default `TODO,FIXME`): comma-separated marker words.

The strategist reads every matching file and proposes one step per UTF-8
file with a marker written in another case (`todo:`, `Fixme:`); the executor
rewrites that file with the markers upper-cased. The text logic is in
`markers.py`, which `python3 -m unittest` covers with a plain CPython. The
bindings and helpers come from `lockstep_sdk/` (the lockstep SDK).

componentize-py imports this module at build time and snapshots the
interpreter: import everything at module level (there are no files to
import from at run time).
"""

from __future__ import annotations

import lockstep_sdk as sdk

import markers


class Strategy(sdk.Strategy):
    def strategize(self, plan_id: str, action: sdk.Action) -> sdk.PlanProposal:
        params = sdk.Params(action.params)
        wanted = markers.parse_markers(params.get("markers"))
        files = sdk.list_files(params.list("globs", markers.DEFAULT_GLOBS))

        steps = []
        for path in files:
            text = sdk.read_text_or_skip(path)
            if text is None or markers.upper_case_markers(text, wanted) is None:
                continue
            # The executor only receives the step: copy what it needs.
            steps.append(
                sdk.Step(
                    id=f"file-{len(steps) + 1}",
                    title=f"Upper-case markers in {path}",
                    params=[("path", path), ("markers", ",".join(wanted))],
                    targets=[path],
                )
            )

        summary = (
            f"{len(steps)} of {sdk.count(len(files), 'file', 'files')} have markers "
            f"to upper-case ({', '.join(wanted)})"
        )
        return sdk.PlanProposal(summary=summary, steps=steps)


class Execution(sdk.Execution):
    def execute(self, plan_id: str, step: sdk.Step) -> sdk.StepOutcome:
        params = sdk.Params(step.params)
        path = params.required("path")
        wanted = markers.parse_markers(params.get("markers"))
        # Reads see the changes of earlier steps of the same plan.
        new = markers.upper_case_markers(sdk.read_text(path), wanted)
        if new is None:
            return sdk.unchanged(f"{path} has no markers to upper-case")
        return sdk.StepOutcome(
            changes=[sdk.write_text(path, new)],
            summary=f"Upper-cased the markers in {path}",
        )
