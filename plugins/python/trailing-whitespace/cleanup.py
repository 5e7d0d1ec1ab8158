"""Pure text logic of the `trailing-whitespace` plugin.

Nothing here talks to the host, so this module imports (and is tested) with
a plain CPython: `python3 -m unittest` in this folder.

Line endings are `\\n` and `\\r\\n`; each line keeps the one it had. Trailing
whitespace is any run of spaces, tabs and stray carriage returns before a
line ending or the end of the file (the `\\r` of a `\\r\\n` is part of the
line ending, not whitespace). Lone `\\r` line endings (classic Mac OS) are not
recognised as line endings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_GLOBS = "**/*"
DEFAULT_LOCK = "trailing-whitespace"
LOCK_TTL_MS = 30_000


@dataclass(frozen=True)
class Report:
    """What `clean` changed (or would change) in one text."""

    text: str
    """The cleaned text."""
    lines: int
    """How many lines lost trailing whitespace."""
    added_newline: bool
    """Whether a final line ending was appended."""

    @property
    def changed(self) -> bool:
        return self.lines > 0 or self.added_newline

    def describe(self) -> str:
        """What was done, e.g. `3 lines stripped, final newline added`."""
        parts = []
        if self.lines:
            parts.append(f"{self.lines} line{'' if self.lines == 1 else 's'} stripped")
        if self.added_newline:
            parts.append("final newline added")
        return ", ".join(parts) or "nothing to do"


def line_ending(text: str) -> str:
    """The file's line ending: that of its first line, `\\n` if it has none."""
    i = text.find("\n")
    return "\r\n" if i > 0 and text[i - 1] == "\r" else "\n"


# A run of trailing blanks: spaces, tabs and carriage returns that do not
# start a `\r\n`, followed by the line ending or the end of the text. One
# match per line at most, so the number of matches is the number of lines.
# (`++` is possessive, Python 3.11+: a run is never retried shorter.)
_TRAILING = re.compile(r"(?:[ \t]|\r(?!\n))++(?=\r?\n|\Z)")

# What a line with trailing blanks looks like at its end, for `needs_cleaning`.
_DIRTY_ENDINGS = (" \n", "\t\n", " \r\n", "\t\r\n", "\r\r\n")


def needs_cleaning(text: str, final_newline: bool = True) -> bool:
    """Whether `clean(text, final_newline)` would change `text`. Uses plain
    substring searches, much faster than `clean` on the (common) clean file."""
    if text.endswith((" ", "\t", "\r")):
        return True
    if final_newline and text and not text.endswith("\n"):
        return True
    return any(end in text for end in _DIRTY_ENDINGS)


def clean(text: str, final_newline: bool = True) -> Report:
    """Strips trailing whitespace from every line of `text`, keeping each
    line's ending, and with `final_newline` appends the file's line ending to
    a non-empty text that lacks one. Cleaning a cleaned text changes nothing.
    """
    if not needs_cleaning(text, final_newline):
        return Report(text, 0, False)
    result, stripped = _TRAILING.subn("", text)
    added = False
    if final_newline and result and not result.endswith("\n"):
        result += line_ending(text)
        added = True
    return Report(result, stripped, added)


def lock_name(value: str | None) -> str:
    """The lock sub-resource to take: the `lock` param, or the default."""
    value = (value or "").strip()
    return value or DEFAULT_LOCK


def summary(needing: int, total: int) -> str:
    """The strategist's summary line."""
    return f"{needing} of {total} files need cleaning"
