"""`lockstep_sdk`: write a lockstep plugin in Python.

The componentize-py bindings of the plugin contract (`lockstep:plugin@0.2.0`,
module `wit_world`) plus what every plugin would otherwise write itself:
typed params with defaults (`Params`), errors as exceptions (`InvalidInput`,
`Retryable`, `Permanent`, `LockFailed`), reading text (`read_text`), listing
files by globs (`list_files`), building changes (`write_text`, `write_bytes`,
`delete`), a lease for a `with` block (`lease`), progress (`Progress`) and
logging (`debug`, `info`, `warn`, `error`).

    import lockstep_sdk as sdk

    class Strategy(sdk.Strategy):
        def strategize(self, plan_id: str, action: sdk.Action) -> sdk.PlanProposal:
            params = sdk.Params(action.params)
            ...

    class Execution(sdk.Execution):
        def execute(self, plan_id: str, step: sdk.Step) -> sdk.StepOutcome:
            ...

Subclassing `sdk.Strategy` and `sdk.Execution` wraps `strategize` and
`execute`: an `sdk.InvalidInput` (or `Retryable`, `Permanent`, `LockFailed`)
raised anywhere below becomes the matching `plugin-error`; any other exception
becomes `permanent` with its type, message and where it was raised, logged
too; and what `execute` returns is checked (a `str` where bytes belong is
refused naming the step, the file and the field).

The module imports under a plain CPython too, without the bindings, so that
logic using `Params` and the errors can be unit-tested; the calls into the
host then raise `RuntimeError`. With the generated stubs (`stubs/`) on the
path everything imports and the host calls raise `NotImplementedError`
unless a test replaces them.
"""

from __future__ import annotations

import builtins
import traceback
from typing import Any, Callable, Iterable, Sequence, TypeVar

try:
    from componentize_py_types import Err
    from wit_world import exports as _exports
    from wit_world.imports import locks as _locks
    from wit_world.imports import log as _log
    from wit_world.imports import progress as _progress
    from wit_world.imports import workspace as _workspace
    from wit_world.imports.types import (
        Action,
        Change,
        Change_Delete,
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
        LockError_Expired,
        LockError_Invalid,
        LockError_Unavailable,
        PlanProposal,
        PluginError,
        PluginError_InvalidInput,
        PluginError_Lock,
        PluginError_Permanent,
        PluginError_Retryable,
        Step,
        StepOutcome,
    )

    BINDINGS = True
except ImportError:  # a plain CPython without the bindings: unit tests
    BINDINGS = False

T = TypeVar("T")


# --- errors ------------------------------------------------------------------


class PluginFailure(Exception):
    """A failure to return from an export as a `plugin-error`; raise one of
    the subclasses."""

    def to_wit(self) -> "PluginError":
        raise NotImplementedError


class InvalidInput(PluginFailure):
    """The action's or the step's params are wrong; retrying will not help."""

    def to_wit(self) -> "PluginError":
        return PluginError_InvalidInput(str(self))


class Retryable(PluginFailure):
    """A transient failure: the user may retry the phase."""

    def to_wit(self) -> "PluginError":
        return PluginError_Retryable(str(self))


class Permanent(PluginFailure):
    """A failure that retrying will not fix."""

    def to_wit(self) -> "PluginError":
        return PluginError_Permanent(str(self))


class LockFailed(PluginFailure):
    """A lock operation failed; `error` is the `lock-error` the host gave,
    returned unchanged (for a conflict the user is told who holds it)."""

    def __init__(self, error: "LockError"):
        super().__init__(_lock_text(error))
        self.error = error

    def to_wit(self) -> "PluginError":
        return PluginError_Lock(self.error)


class NotText(Exception):
    """`read_text` found a file that cannot be edited as text: not UTF-8, or
    larger than the host's read cap (then `too_large` is true). The message
    names the file and says which. A strategist usually logs it and skips the
    file; raised out of an export it becomes `permanent`."""

    def __init__(self, message: str, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


# --- params ------------------------------------------------------------------


class Params:
    """The params of an action or a step, read with defaults. Every refusal
    raises `InvalidInput` naming the param.

        params = sdk.Params(action.params)
        header = params.required("header")
        globs = params.list("globs", "**/*")
        final_newline = params.flag("final_newline", True)
    """

    def __init__(self, params: Sequence[tuple[str, str]]):
        self._params = list(params)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of `key` (the first, if repeated), else `default`."""
        for k, v in self._params:
            if k == key:
                return v
        return default

    def required(self, key: str) -> str:
        """The value of `key`; absent or blank raises `InvalidInput`."""
        value = self.get(key)
        if value is None or not value.strip():
            raise InvalidInput(f"param `{key}` is required")
        return value

    def flag(self, key: str, default: bool) -> bool:
        """`key` as `"true"` or `"false"` (any case, blanks around ignored),
        `default` when absent or blank."""
        value = self.get(key)
        if value is None or not value.strip():
            return default
        if value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise InvalidInput(f'param `{key}` must be "true" or "false", not {value!r}')

    def number(self, key: str, default: int) -> int:
        """`key` as a whole number (0 or more), `default` when absent."""
        value = self.get(key)
        if value is None:
            return default
        if not value.strip().isdigit():
            raise InvalidInput(f"param `{key}` must be a whole number, not {value!r}")
        return int(value.strip())

    def list(self, key: str, default: str) -> builtins.list[str]:
        """`key` as a comma-separated list (items trimmed, empty ones left
        out); `default` is comma-separated too."""
        value = self.get(key, default)
        assert value is not None
        return [item.strip() for item in value.split(",") if item.strip()]

    def pick(self, *keys: str) -> builtins.list[tuple[str, str]]:
        """The params named in `keys` that are present, in their order here:
        what a strategist copies from the action into each step."""
        return [(k, v) for k, v in self._params if k in keys]


# --- the exports ---------------------------------------------------------------


def _where(e: BaseException) -> str:
    """Where `e` was raised, innermost frame first (`app.py:12 in _run`).
    Inside the component there are no source files, so no source lines."""
    frames = [
        f"{frame.f_code.co_filename}:{line} in {frame.f_code.co_name}"
        for frame, line in traceback.walk_tb(e.__traceback__)
    ]
    return " <- ".join(reversed(frames))


def _guarded(what: str, call: Callable[[], T]) -> T:
    """Runs an export body and turns what it raises into a `plugin-error`."""
    try:
        return call()
    except Err:
        raise
    except PluginFailure as e:
        raise Err(e.to_wit())
    except NotText as e:
        raise Err(PluginError_Permanent(str(e)))
    except MemoryError:
        # The host's memory limit stopped the heap from growing; this
        # instance can still answer.
        raise Err(PluginError_Permanent("out of memory: raise [limits] memory_mb in plugin.toml"))
    except Exception as e:
        message = f"{what} failed: {type(e).__name__}: {e}"
        error(f"{message}, at {_where(e)}")
        raise Err(PluginError_Permanent(message))


def contents_problem(step_id: str, path: object, contents: object) -> str | None:
    """What is wrong with the `contents` of a write to `path`, or None. The
    WIT type is `list<u8>`: bytes. The bindings would not say which field of
    which change was wrong."""
    if isinstance(contents, (bytes, bytearray)):
        return None
    hint = "; use text.encode('utf-8'), or sdk.write_text(path, text)" if isinstance(contents, str) else ""
    return (
        f"step `{step_id}`: change `{path}`: `contents` must be bytes "
        f"(got {type(contents).__name__}){hint}"
    )


def outcome_problem(step_id: str, outcome: object) -> str | None:
    """What is wrong with the outcome `execute` returned, or None."""
    at = f"step `{step_id}`"
    if not isinstance(outcome, StepOutcome):
        return f"{at}: `execute` must return a StepOutcome (got {type(outcome).__name__})"
    if not isinstance(outcome.summary, str):
        return f"{at}: `summary` must be a str (got {type(outcome.summary).__name__})"
    if not isinstance(outcome.changes, list):
        return f"{at}: `changes` must be a list (got {type(outcome.changes).__name__})"
    for i, change in enumerate(outcome.changes, 1):
        if isinstance(change, Change_Write):
            write = change.value
            if not isinstance(write, FileWrite) or not isinstance(write.path, str):
                return f"{at}: change {i} must be Change_Write(FileWrite(path: str, contents: bytes))"
            problem = contents_problem(step_id, write.path, write.contents)
            if problem is not None:
                return problem
        elif isinstance(change, Change_Delete):
            if not isinstance(change.value, str):
                return f"{at}: change {i}: a delete's path must be a str (got {type(change.value).__name__})"
        else:
            return f"{at}: change {i} must be a Change_Write or a Change_Delete (got {type(change).__name__})"
    return None


if BINDINGS:

    class Strategy(_exports.Strategy):
        """Subclass it as `Strategy` in the app module and define
        `strategize(self, plan_id, action)`; the SDK turns exceptions into
        `plugin-error`s (see the module's docs)."""

        def __init_subclass__(cls, **kwargs: Any):
            super().__init_subclass__(**kwargs)
            body = cls.__dict__.get("strategize")
            if body is not None:

                def strategize(self: Any, plan_id: str, action: Action) -> PlanProposal:
                    return _guarded("strategize", lambda: body(self, plan_id, action))

                strategize.__doc__ = body.__doc__
                cls.strategize = strategize  # type: ignore[method-assign]

    class Execution(_exports.Execution):
        """Subclass it as `Execution` in the app module and define
        `execute(self, plan_id, step)`; the SDK turns exceptions into
        `plugin-error`s and checks the outcome's types."""

        def __init_subclass__(cls, **kwargs: Any):
            super().__init_subclass__(**kwargs)
            body = cls.__dict__.get("execute")
            if body is not None:

                def checked(self: Any, plan_id: str, step: Step) -> StepOutcome:
                    outcome = body(self, plan_id, step)
                    problem = outcome_problem(step.id, outcome)
                    if problem is not None:
                        raise Permanent(problem)
                    return outcome

                def execute(self: Any, plan_id: str, step: Step) -> StepOutcome:
                    return _guarded(f"step `{step.id}`", lambda: checked(self, plan_id, step))

                execute.__doc__ = body.__doc__
                cls.execute = execute  # type: ignore[method-assign]


# --- the host ------------------------------------------------------------------


def _host() -> None:
    if not BINDINGS:
        raise RuntimeError(
            "lockstep_sdk: the host's imports exist only inside the component "
            "(or with stubs/ on the path, replaced by a test)"
        )


def fs_failure(what: str, err: "FsError") -> PluginFailure:
    """The failure to raise when the host refused a workspace call on `what`
    (a path or a glob): a malformed path or glob is `InvalidInput`, an I/O
    failure `Retryable`, anything else `Permanent`."""
    if isinstance(err, FsError_Invalid):
        return InvalidInput(f"{what}: {err.value}")
    if isinstance(err, FsError_Io):
        return Retryable(f"{what}: {err.value}")
    if isinstance(err, FsError_NotFound):
        return Permanent(f"{what}: not found: {err.value}")
    if isinstance(err, FsError_Denied):
        return Permanent(f"{what}: denied: {err.value}")
    if isinstance(err, FsError_TooLarge):
        return Permanent(f"{what}: larger than the read cap of {err.value} bytes")
    return Permanent(f"{what}: {err!r}")


def read_bytes(path: str) -> bytes:
    """The contents of `path`; reads during Execute see the changes of
    earlier steps. A refusal raises the failure `fs_failure` names."""
    _host()
    try:
        return _workspace.read(path)
    except Err as e:
        raise fs_failure(path, e.value)


def read_text(path: str) -> str:
    """`path` as UTF-8 text. Raises `NotText` when it is not UTF-8 or is over
    the host's read cap, and the failure `fs_failure` names for other
    refusals."""
    _host()
    try:
        data = _workspace.read(path)
    except Err as e:
        if isinstance(e.value, FsError_TooLarge):
            raise NotText(f"{path}: larger than the read cap of {e.value.value} bytes", True)
        raise fs_failure(path, e.value)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotText(f"{path}: not UTF-8 text")


def read_text_or_skip(path: str) -> str | None:
    """`path` as UTF-8 text, or None when it is not a text file: not UTF-8
    (logged at `debug`) or over the host's read cap (logged at `warn`), what
    a strategist skips. Other refusals raise as in `read_text`."""
    try:
        return read_text(path)
    except NotText as e:
        (warn if e.too_large else debug)(f"skipping {e}")
        return None


def list_files(globs: Iterable[str]) -> list[str]:
    """The files matching any of `globs`, sorted and without repeats. A
    malformed glob raises `InvalidInput`; a glob matching more files than the
    host lists at once (100 000 by default) raises `Permanent`."""
    _host()
    files: set[str] = set()
    for glob in globs:
        try:
            found = _workspace.list(glob)
        except Err as e:
            if isinstance(e.value, FsError_TooLarge):
                raise Permanent(
                    f"{glob}: matches more than {e.value.value} files, the most one list "
                    "returns; use narrower globs"
                )
            raise fs_failure(glob, e.value)
        debug(f"{glob}: {count(len(found), 'file', 'files')}")
        files.update(found)
    return sorted(files)


def write_bytes(path: str, data: bytes) -> "Change":
    """A change that replaces (or creates) `path` with `data`."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"write_bytes({path!r}): data must be bytes, not {type(data).__name__}")
    return Change_Write(FileWrite(path=path, contents=bytes(data)))


def write_text(path: str, text: str) -> "Change":
    """A change that replaces (or creates) `path` with `text`, as UTF-8."""
    return write_bytes(path, text.encode("utf-8"))


def delete(path: str) -> "Change":
    """A change that deletes `path`."""
    return Change_Delete(path)


def unchanged(summary: str) -> "StepOutcome":
    """An outcome that changes nothing: the step's work was done already."""
    return StepOutcome(changes=[], summary=summary)


def _lock_text(err: object) -> str:
    """`conflict: …`, `expired: …`: a lock error in one line."""
    value = getattr(err, "value", err)
    kind = type(err).__name__.removeprefix("LockError_").lower()
    if kind == "conflict":
        return f"held by {value.owner} ({value.operation}) on {value.holder}"
    return f"{kind}: {value}"


class Lease:
    """A lease on a sub-resource of the plan's project, for a `with` block:

        with sdk.lease("index", ttl_ms=30_000) as lease:
            ...  # work under the lease

    Leaving the block normally releases the lease and raises `LockFailed`
    if it was lost meanwhile (what was computed under it must not be used);
    leaving it by an exception releases it too. The host releases every
    lease when the call ends in any case."""

    def __init__(self, name: str, handle: Any):
        self.name = name
        self._handle = handle
        self._dropped = False

    @property
    def resource(self) -> str:
        """The full resource name the host locked (`project:<id>/res:<name>`)."""
        return self._handle.name()

    @property
    def token(self) -> int:
        """The fencing token: greater than any earlier holder's."""
        return self._handle.token()

    def renew(self, ttl_ms: int) -> None:
        """Extends the lease by `ttl_ms` from now; a lost lease raises
        `LockFailed`."""
        try:
            self._handle.renew(ttl_ms)
        except Err as e:
            raise self._lost(e.value)

    def release(self) -> None:
        """Releases the lease now; a lease lost before raises `LockFailed`.
        Releasing it again does nothing."""
        if self._dropped:
            return
        try:
            self._handle.release()
        except Err as e:
            raise self._lost(e.value)
        finally:
            self._drop()

    def _drop(self) -> None:
        if not self._dropped:
            self._dropped = True
            self._handle.__exit__(None, None, None)

    def _lost(self, err: "LockError") -> LockFailed:
        error(f"lease {self.name}: {_lock_text(err)}")
        return LockFailed(err)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        if kind is None:
            self.release()
        else:
            self._drop()


def lease(name: str, ttl_ms: int = 30_000) -> Lease:
    """Takes a lease on `name` (letters, digits and `-_.:/`) for `ttl_ms`
    (clamped by the host to between 5 s and 1 h). It never waits: if another
    session holds it, the conflict is logged and `LockFailed` raised, which
    fails the call with `plugin-error::lock(conflict)` and tells the user who
    holds it (exit code 3)."""
    _host()
    try:
        return Lease(name, _locks.acquire(name, ttl_ms))
    except Err as e:
        warn(f"lease {name}: {_lock_text(e.value)}")
        raise LockFailed(e.value)


# --- logging and progress ------------------------------------------------------


def _write(level: str, message: str) -> None:
    _host()
    _log.log(getattr(_log.Level, level), message)


def debug(message: str) -> None:
    """Logs `message` at `debug` (shown with LOCKSTEP_LOG=lockstep::plugin=debug)."""
    _write("DEBUG", message)


def info(message: str) -> None:
    """Logs `message` at `info` (`lockstep plugin test` shows it)."""
    _write("INFO", message)


def warn(message: str) -> None:
    """Logs `message` at `warn`."""
    _write("WARN", message)


def error(message: str) -> None:
    """Logs `message` at `error`."""
    _write("ERROR", message)


class Progress:
    """Counts finished units of work and reports each to the host, which
    shows it to whoever runs the plan (`3/10: formatting a.json`)."""

    def __init__(self, total: int):
        self.done = 0
        self.total = total

    def advance(self, message: str) -> None:
        """One more unit is finished; `message` says what it was."""
        self.done += 1
        _host()
        _progress.report(self.done, self.total, message)


def count(n: int, one: str, many: str) -> str:
    """`count(1, "file", "files")` is "1 file", `count(2, ...)` "2 files"."""
    return f"{n} {one if n == 1 else many}"
