"""The plugin's pure logic.

Nothing here talks to the host, so this module imports (and is tested) with
a plain CPython: `python3 -m unittest` in this folder.
"""

from __future__ import annotations

import re
from typing import Sequence

DEFAULT_MARKERS = "TODO,FIXME"
DEFAULT_GLOBS = "**/*"


class ParamError(ValueError):
    """A parameter has a value the plugin cannot use."""


def param(params: Sequence[tuple[str, str]], key: str) -> str | None:
    """The value of parameter `key`, if present (params are key/value pairs)."""
    for k, v in params:
        if k == key:
            return v
    return None


def parse_markers(value: str | None) -> list[str]:
    """The `markers` param: comma-separated words of ASCII letters, returned
    upper-cased."""
    markers = []
    for m in (DEFAULT_MARKERS if value is None else value).split(","):
        m = m.strip()
        if not m:
            continue
        if not re.fullmatch(r"[A-Za-z]+", m):
            raise ParamError(f"param `markers`: `{m}` is not a word of ASCII letters")
        markers.append(m.upper())
    if not markers:
        raise ParamError("param `markers` names no marker")
    return markers


def split_globs(value: str | None) -> list[str]:
    """The comma-separated `globs` param."""
    globs = DEFAULT_GLOBS if value is None else value
    return [g.strip() for g in globs.split(",") if g.strip()]


def upper_case_markers(text: str, markers: Sequence[str]) -> str | None:
    """`text` with every marker that is followed by `:`, starts a word and is
    not upper-case already written in upper case (`todo:` and `Todo:` become
    `TODO:`; `mastodon:` stays). `None` when nothing changes."""
    words = "|".join(re.escape(m) for m in markers)
    pattern = re.compile(rf"(?<![A-Za-z0-9_])(?:{words})(?=:)", re.IGNORECASE | re.ASCII)
    new = pattern.sub(lambda m: m.group(0).upper(), text)
    return None if new == text else new


def files(n: int) -> str:
    """"1 file", "2 files"."""
    return f"{n} file{'' if n == 1 else 's'}"


def contents_problem(step_id: str, path: str, contents: object) -> str | None:
    """What is wrong with the `contents` of a write to `path`, or None.

    The WIT type is `list<u8>`: give `bytes`. The bindings would not say
    which field of which change was wrong, so the executor checks first.
    """
    if isinstance(contents, (bytes, bytearray)):
        return None
    hint = "; use text.encode('utf-8')" if isinstance(contents, str) else ""
    return (
        f"step `{step_id}`: change `{path}`: `contents` must be bytes "
        f"(got {type(contents).__name__}){hint}"
    )
