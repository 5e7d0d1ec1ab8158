"""The plugin's pure logic.

Nothing here talks to the host, so this module imports (and is tested) with
a plain CPython: `python3 -m unittest` in this folder. (`lockstep_sdk`
imports without the component's bindings; only its host calls need them.)
"""

from __future__ import annotations

import re
from typing import Sequence

from lockstep_sdk import InvalidInput

DEFAULT_MARKERS = "TODO,FIXME"
DEFAULT_GLOBS = "**/*"


def parse_markers(value: str | None) -> list[str]:
    """The `markers` param: comma-separated words of ASCII letters, returned
    upper-cased. A bad value raises `InvalidInput`."""
    markers = []
    for m in (DEFAULT_MARKERS if value is None else value).split(","):
        m = m.strip()
        if not m:
            continue
        if not re.fullmatch(r"[A-Za-z]+", m):
            raise InvalidInput(f"param `markers`: `{m}` is not a word of ASCII letters")
        markers.append(m.upper())
    if not markers:
        raise InvalidInput("param `markers` names no marker")
    return markers


def upper_case_markers(text: str, markers: Sequence[str]) -> str | None:
    """`text` with every marker that is followed by `:`, starts a word and is
    not upper-case already written in upper case (`todo:` and `Todo:` become
    `TODO:`; `mastodon:` stays). `None` when nothing changes."""
    words = "|".join(re.escape(m) for m in markers)
    pattern = re.compile(rf"(?<![A-Za-z0-9_])(?:{words})(?=:)", re.IGNORECASE | re.ASCII)
    new = pattern.sub(lambda m: m.group(0).upper(), text)
    return None if new == text else new
