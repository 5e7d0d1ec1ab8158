"""`{{name}}`: upper-cases TODO and FIXME markers in text files.

Action params:
- `globs` (default `**/*`): comma-separated globs naming the files.
- `markers` (default `TODO,FIXME`): comma-separated marker words.

The strategist reads every matching file and proposes one step per UTF-8
file with a marker written in another case (`todo:`, `Fixme:`); the executor
rewrites that file with the markers upper-cased. The text logic is in
`markers.py`, which `python3 -m unittest` covers with a plain CPython.

componentize-py imports this module at build time and snapshots the
interpreter: import everything at module level (there are no files to
import from at run time).
"""

from __future__ import annotations

from typing import Callable, TypeVar

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log, workspace
from wit_world.imports.types import (
    Action,
    Change_Write,
    FileWrite,
    FsError,
    FsError_Denied,
    FsError_Invalid,
    FsError_Io,
    FsError_NotFound,
    FsError_TooLarge,
    PlanProposal,
    PluginError,
    PluginError_InvalidInput,
    PluginError_Permanent,
    PluginError_Retryable,
    Step,
    StepOutcome,
)

import markers
from markers import ParamError

T = TypeVar("T")


def _fs_failure(what: str, err: FsError) -> PluginError:
    """The plugin error for a refused workspace call on `what`."""
    if isinstance(err, FsError_Invalid):
        return PluginError_InvalidInput(f"{what}: {err.value}")
    if isinstance(err, FsError_Io):
        return PluginError_Retryable(f"{what}: {err.value}")
    if isinstance(err, FsError_NotFound):
        return PluginError_Permanent(f"{what}: not found: {err.value}")
    if isinstance(err, FsError_Denied):
        return PluginError_Permanent(f"{what}: denied: {err.value}")
    if isinstance(err, FsError_TooLarge):
        return PluginError_Permanent(f"{what}: larger than the read cap of {err.value} bytes")
    return PluginError_Permanent(f"{what}: {err!r}")


def _guard(call: Callable[[], T]) -> T:
    """Runs an export body. `Err` carries a `plugin-error` and passes through;
    bad params become `invalid-input`; any other exception (a bug) is logged
    and becomes `permanent` instead of trapping the instance."""
    try:
        return call()
    except Err:
        raise
    except ParamError as e:
        raise Err(PluginError_InvalidInput(str(e)))
    except Exception as e:
        what = f"{type(e).__name__}: {e}"
        log.log(log.Level.ERROR, f"internal error: {what}")
        raise Err(PluginError_Permanent(f"internal error: {what}"))


class Unreadable(Exception):
    """A file that cannot be edited as text (not UTF-8, over the read cap)."""


def _read_text(path: str) -> str:
    """`path` as text; reads see the changes of earlier steps of the plan."""
    try:
        data = workspace.read(path)
    except Err as e:
        if isinstance(e.value, FsError_TooLarge):
            raise Unreadable(f"{path}: larger than {e.value.value} bytes")
        raise Err(_fs_failure(path, e.value))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{path}: not UTF-8 text")


def _strategize(action: Action) -> PlanProposal:
    wanted = markers.parse_markers(markers.param(action.params, "markers"))
    files: set[str] = set()
    for glob in markers.split_globs(markers.param(action.params, "globs")):
        try:
            found = workspace.list(glob)
        except Err as e:
            raise Err(_fs_failure(glob, e.value))
        log.log(log.Level.DEBUG, f"{glob}: {markers.files(len(found))}")
        files.update(found)

    steps = []
    for path in sorted(files):
        try:
            text = _read_text(path)
        except Unreadable as e:
            log.log(log.Level.DEBUG, f"skipping {e}")
            continue
        if markers.upper_case_markers(text, wanted) is None:
            continue
        # The executor only receives the step: copy what it needs.
        steps.append(
            Step(
                id=f"file-{len(steps) + 1}",
                title=f"Upper-case markers in {path}",
                params=[("path", path), ("markers", ",".join(wanted))],
                targets=[path],
            )
        )

    summary = (
        f"{len(steps)} of {markers.files(len(files))} have markers to upper-case "
        f"({', '.join(wanted)})"
    )
    log.log(log.Level.INFO, summary)
    return PlanProposal(summary=summary, steps=steps)


def _execute(step: Step) -> StepOutcome:
    path = markers.param(step.params, "path")
    if not path:
        raise ParamError("step param `path` is required")
    wanted = markers.parse_markers(markers.param(step.params, "markers"))
    try:
        text = _read_text(path)
    except Unreadable as e:
        raise Err(PluginError_Permanent(str(e)))
    new = markers.upper_case_markers(text, wanted)
    if new is None:
        return StepOutcome(changes=[], summary=f"{path} has no markers to upper-case")
    return StepOutcome(
        changes=[Change_Write(FileWrite(path=path, contents=new.encode("utf-8")))],
        summary=f"Upper-cased the markers in {path}",
    )


class Strategy(exports.Strategy):
    def strategize(self, plan_id: str, action: Action) -> PlanProposal:
        return _guard(lambda: _strategize(action))


def _checked(step: Step, outcome: StepOutcome) -> StepOutcome:
    """The outcome, once the contents of its writes are checked to be bytes."""
    for change in outcome.changes:
        if isinstance(change, Change_Write):
            problem = markers.contents_problem(step.id, change.value.path, change.value.contents)
            if problem is not None:
                raise Err(PluginError_Permanent(problem))
    return outcome


class Execution(exports.Execution):
    def execute(self, plan_id: str, step: Step) -> StepOutcome:
        return _guard(lambda: _checked(step, _execute(step)))
