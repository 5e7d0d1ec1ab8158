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

The text logic lives in `cleanup.py`, which imports without the bindings.
"""

from __future__ import annotations

import traceback
from typing import Callable, TypeVar

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import locks, log, workspace
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
    LockError,
    LockError_Conflict,
    PlanProposal,
    PluginError,
    PluginError_InvalidInput,
    PluginError_Lock,
    PluginError_Permanent,
    PluginError_Retryable,
    Step,
    StepOutcome,
)

import cleanup
from cleanup import ParamError

T = TypeVar("T")


def _log(level: log.Level, message: str) -> None:
    log.log(level, message)


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
    """Runs an export body. `Err` exceptions carry a `plugin-error` and pass
    through; bad params become `invalid-input`; any other exception (a bug)
    is logged with where it was raised and becomes `permanent` instead of
    trapping the instance."""
    try:
        return call()
    except Err:
        raise
    except ParamError as e:
        raise Err(PluginError_InvalidInput(str(e)))
    except MemoryError:
        # The host's memory limit stopped the heap from growing; this
        # instance can still answer.
        raise Err(PluginError_Permanent("out of memory: raise [limits] memory_mb"))
    except Exception as e:
        what = f"{type(e).__name__}: {e}"
        _log(log.Level.ERROR, f"internal error: {what}, at {_where(e)}")
        raise Err(PluginError_Permanent(f"internal error: {what}"))


def _where(e: BaseException) -> str:
    """Where `e` was raised, innermost frame first. Unlike `traceback.format_exc`
    this does not look up source lines: inside the component there are no
    source files to read."""
    frames = [
        f"{frame.f_code.co_filename}:{line} in {frame.f_code.co_name}"
        for frame, line in traceback.walk_tb(e.__traceback__)
    ]
    return " <- ".join(reversed(frames))


def _list_files(globs: list[str]) -> list[str]:
    """The sorted, de-duplicated files matching any of `globs`."""
    files: set[str] = set()
    for glob in globs:
        try:
            found = workspace.list(glob)
        except Err as e:
            raise Err(_fs_failure(glob, e.value))
        _log(log.Level.DEBUG, f"{glob}: {len(found)} files")
        files.update(found)
    return sorted(files)


class Unreadable(Exception):
    """A file that cannot be edited as text; the message says why, `level`
    how loudly to log skipping it (binary files are common, huge ones not)."""

    def __init__(self, message: str, level: log.Level):
        super().__init__(message)
        self.level = level


def _read_text(path: str) -> str:
    """`path` as text. Raises `Unreadable` when it is not UTF-8 or is over the
    host's read cap, and the matching plugin error for other refusals."""
    try:
        data = workspace.read(path)
    except Err as e:
        if isinstance(e.value, FsError_TooLarge):
            raise Unreadable(f"{path}: larger than {e.value.value} bytes", log.Level.WARN)
        raise Err(_fs_failure(path, e.value))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{path}: not UTF-8 text", log.Level.DEBUG)


def _acquire(name: str) -> locks.Lease:
    """Takes the lease on `name`. A lock error, a conflict above all, is
    returned to the host unchanged as `plugin-error::lock`."""
    try:
        return locks.acquire(name, cleanup.LOCK_TTL_MS)
    except Err as e:
        err = e.value
        if isinstance(err, LockError_Conflict):
            c = err.value
            _log(
                log.Level.WARN,
                f"{c.resource} is held by {c.owner} ({c.operation}) on {c.holder} "
                f"until {c.expires_at}",
            )
        else:
            _log(log.Level.WARN, f"cannot lease {name}: {_lock_error_text(err)}")
        raise Err(PluginError_Lock(err))


def _lock_error_text(err: LockError) -> str:
    """`expired: ...`, `invalid: ...`: a lock error for a log line."""
    kind = type(err).__name__.removeprefix("LockError_").lower()
    return f"{kind}: {err.value}"


class Strategy(exports.Strategy):
    def strategize(self, plan_id: str, action: Action) -> PlanProposal:
        return _guard(lambda: _strategize(action))


class Execution(exports.Execution):
    def execute(self, plan_id: str, step: Step) -> StepOutcome:
        return _guard(lambda: _execute(step))


def _strategize(action: Action) -> PlanProposal:
    params = action.params
    final_newline = cleanup.parse_bool(
        cleanup.param(params, "final_newline"), "final_newline", True
    )
    lock = cleanup.lock_name(cleanup.param(params, "lock"))
    files = _list_files(cleanup.split_globs(cleanup.param(params, "globs")))

    steps = []
    for path in files:
        try:
            text = _read_text(path)
        except Unreadable as e:
            _log(e.level, f"skipping {e}")
            continue
        if not cleanup.needs_cleaning(text, final_newline):
            continue
        _log(log.Level.DEBUG, f"{path} needs cleaning")
        steps.append(
            Step(
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
    _log(log.Level.INFO, summary)
    return PlanProposal(summary=summary, steps=steps)


def _execute(step: Step) -> StepOutcome:
    params = step.params
    path = cleanup.param(params, "path")
    if not path:
        raise ParamError("step param `path` is required")
    final_newline = cleanup.parse_bool(
        cleanup.param(params, "final_newline"), "final_newline", True
    )
    lock = cleanup.lock_name(cleanup.param(params, "lock"))

    # Leaving the `with` block drops the handle, which releases the lease on
    # every path; the explicit release below reports a lease lost meanwhile.
    with _acquire(lock) as lease:
        _log(log.Level.DEBUG, f"leased {lease.name()} (token {lease.token()})")
        try:
            text = _read_text(path)
        except Unreadable as e:
            raise Err(PluginError_Permanent(str(e)))
        report = cleanup.clean(text, final_newline)
        try:
            lease.release()
        except Err as e:
            _log(log.Level.WARN, f"lost the lease on {lock}: {_lock_error_text(e.value)}")
            raise Err(PluginError_Lock(e.value))

    if not report.changed:
        summary = f"{path} is already clean"
        changes = []
    else:
        summary = f"Cleaned {path}: {report.describe()}"
        changes = [Change_Write(FileWrite(path=path, contents=report.text.encode("utf-8")))]
    _log(log.Level.INFO, summary)
    return StepOutcome(changes=changes, summary=summary)
