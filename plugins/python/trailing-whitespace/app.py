"""`trailing-whitespace`: strips trailing spaces and tabs from text files.

Action params:
- `globs` (default `**/*`): comma-separated globs naming the files.
- `final_newline` (`"true"` or `"false"`, default `"true"`): also end every
  non-empty file with a line ending.
- `lock` (default `trailing-whitespace`): the sub-resource the executor
  leases while it rewrites a file.

The strategist proposes one step per UTF-8 file that has trailing blanks (or
lacks its final newline); files that are not UTF-8 or exceed the host's read
cap are skipped. The executor takes the lease, rewrites the file (keeping
each line's `\\n` or `\\r\\n`), releases the lease and returns the write. A
lock conflict is returned as `plugin-error::lock(conflict)` unchanged, so the
host can say who holds the lease.

The text logic lives in `cleanup.py`, which imports without the bindings;
the bindings and helpers come from the lockstep SDK (`sdk/python`).
"""

from __future__ import annotations

import lockstep_sdk as sdk

import cleanup


def _options(params: sdk.Params) -> tuple[bool, str]:
    """The `final_newline` and `lock` params."""
    return params.flag("final_newline", True), cleanup.lock_name(params.get("lock"))


class Strategy(sdk.Strategy):
    def strategize(self, plan_id: str, action: sdk.Action) -> sdk.PlanProposal:
        params = sdk.Params(action.params)
        final_newline, lock = _options(params)
        files = sdk.list_files(params.list("globs", cleanup.DEFAULT_GLOBS) or [cleanup.DEFAULT_GLOBS])

        steps = []
        for path in files:
            text = sdk.read_text_or_skip(path)
            if text is None or not cleanup.needs_cleaning(text, final_newline):
                continue
            sdk.debug(f"{path} needs cleaning")
            steps.append(
                sdk.Step(
                    id=f"file-{len(steps) + 1}",
                    title=f"Strip trailing whitespace in {path}",
                    params=[
                        ("path", path),
                        ("final_newline", "true" if final_newline else "false"),
                        ("lock", lock),
                    ],
                    targets=[path],
                )
            )

        summary = cleanup.summary(len(steps), len(files))
        return sdk.PlanProposal(summary=summary, steps=steps)


class Execution(sdk.Execution):
    def execute(self, plan_id: str, step: sdk.Step) -> sdk.StepOutcome:
        params = sdk.Params(step.params)
        path = params.required("path")
        final_newline, lock = _options(params)

        # Leaving the block releases the lease, and fails the step if the
        # lease was lost meanwhile; a conflict fails it before any read.
        with sdk.lease(lock, cleanup.LOCK_TTL_MS) as lease:
            sdk.debug(f"leased {lease.resource} (token {lease.token})")
            report = cleanup.clean(sdk.read_text(path), final_newline)

        if not report.changed:
            summary = f"{path} is already clean"
            changes = []
        else:
            summary = f"Cleaned {path}: {report.describe()}"
            changes = [sdk.write_text(path, report.text)]
        return sdk.StepOutcome(changes=changes, summary=summary)
