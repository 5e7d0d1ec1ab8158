"""Tests of the trailing-whitespace plugin, run with a plain CPython:

    python3 -m unittest        # in this folder

`CleanupTest` covers the text logic. `AppTest` drives the exports of
`app.py` against fake host functions, through the lockstep SDK and its stub
bindings (`sdk/python` and `sdk/python/stubs` of this repository).
"""

from __future__ import annotations

import os
import random
import sys
import unittest
from unittest import mock

# The SDK and the stub bindings from `componentize-py bindings` (their host
# functions raise NotImplementedError; the tests below replace them).
_SDK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "sdk", "python")
sys.path[:0] = [_SDK, os.path.join(_SDK, "stubs")]

import app  # noqa: E402
import cleanup  # noqa: E402
from cleanup import clean  # noqa: E402
from componentize_py_types import Err  # noqa: E402
from wit_world.imports import locks, log, workspace  # noqa: E402
from wit_world.imports import types as t  # noqa: E402


class CleanupTest(unittest.TestCase):
    def test_strips_spaces_and_tabs_keeping_lf(self):
        r = clean("a  \nb\t\n  c \t \nd\n")
        self.assertEqual(r.text, "a\nb\n  c\nd\n")
        self.assertEqual(r.lines, 3)
        self.assertFalse(r.added_newline)

    def test_keeps_crlf_and_mixed_endings_per_line(self):
        self.assertEqual(clean("a \r\nb\t\r\n").text, "a\r\nb\r\n")
        self.assertEqual(clean("a \r\nb \nc\r\n").text, "a\r\nb\nc\r\n")

    def test_blank_lines_lose_their_blanks_but_stay(self):
        self.assertEqual(clean("a\n   \n\t\nb\n").text, "a\n\n\nb\n")

    def test_interior_and_unicode_blanks_are_kept(self):
        text = "a  b\u00a0\n\tindented\n"
        self.assertEqual(clean(text).text, text)
        self.assertFalse(clean(text).changed)

    def test_adds_the_files_own_final_line_ending(self):
        r = clean("a\nb")
        self.assertEqual(r.text, "a\nb\n")
        self.assertTrue(r.added_newline)
        self.assertEqual(r.lines, 0)
        self.assertEqual(clean("a\r\nb  ").text, "a\r\nb\r\n")
        self.assertEqual(clean("single").text, "single\n")

    def test_final_newline_can_be_turned_off(self):
        r = clean("a \nb ", final_newline=False)
        self.assertEqual(r.text, "a\nb")
        self.assertEqual(r.lines, 2)
        self.assertFalse(r.added_newline)
        self.assertFalse(clean("a\nb", final_newline=False).changed)

    def test_empty_and_blank_only_texts_stay_empty(self):
        self.assertFalse(clean("").changed)
        self.assertEqual(clean("").text, "")
        self.assertEqual(clean("  \t").text, "")
        self.assertEqual(clean("\n").text, "\n")

    def test_stray_carriage_returns_at_line_end_are_blanks(self):
        self.assertEqual(clean("a\t\r \n").text, "a\n")
        self.assertEqual(clean("a\r\r\n").text, "a\r\n")
        self.assertEqual(clean("a \r").text, "a\n")

    def test_cleaning_is_idempotent(self):
        samples = [
            "a  \nb\t\n",
            "a \r\nb\r\n  ",
            "a\t\r \n\r\r\nx",
            " \r \n \n\r",
            "\u00a0 \n\ufefftext  ",
            "",
        ]
        for text in samples:
            for final in (True, False):
                once = clean(text, final).text
                again = clean(once, final)
                self.assertEqual(again.text, once, repr(text))
                self.assertFalse(again.changed, repr(text))

    def test_random_texts_come_out_clean_with_their_line_endings(self):
        rng = random.Random(7)
        for _ in range(5000):
            text = "".join(rng.choice("ab \t\r\n\u00a0") for _ in range(rng.randint(0, 16)))
            r = clean(text, final_newline=False)
            # Only blanks were removed, and every line ending survived.
            self.assertEqual(r.text.count("\n"), text.count("\n"), repr(text))
            self.assertEqual(r.text.count("\r\n"), text.count("\r\n"), repr(text))
            self.assertEqual(r.text.replace(" ", "").replace("\t", "").replace("\r", ""),
                             text.replace(" ", "").replace("\t", "").replace("\r", ""))
            for line in r.text.split("\n"):
                self.assertFalse(line.removesuffix("\r").endswith((" ", "\t", "\r")), repr(text))
            self.assertFalse(clean(r.text, final_newline=False).changed, repr(text))
            for final in (True, False):
                self.assertEqual(cleanup.needs_cleaning(text, final), clean(text, final).changed,
                                 repr(text))

    def test_describe(self):
        self.assertEqual(clean("a \n").describe(), "1 line stripped")
        self.assertEqual(clean("a \nb ").describe(), "2 lines stripped, final newline added")
        self.assertEqual(clean("a").describe(), "final newline added")
        self.assertEqual(clean("a\n").describe(), "nothing to do")

    def test_line_ending(self):
        self.assertEqual(cleanup.line_ending("a\r\nb\n"), "\r\n")
        self.assertEqual(cleanup.line_ending("a\nb\r\n"), "\n")
        self.assertEqual(cleanup.line_ending("no newline"), "\n")
        self.assertEqual(cleanup.line_ending("\n"), "\n")

    def test_lock_and_summary(self):
        self.assertEqual(cleanup.lock_name(None), "trailing-whitespace")
        self.assertEqual(cleanup.lock_name("  "), "trailing-whitespace")
        self.assertEqual(cleanup.lock_name("docs"), "docs")
        self.assertEqual(cleanup.summary(2, 5), "2 of 5 files need cleaning")


class FakeLease:
    def __init__(self, host, name):
        self.host, self._name, self.released = host, name, False

    def name(self):
        return f"project:p/res:{self._name}"

    def token(self):
        return 1

    def release(self):
        if self.host.lose_leases:
            raise Err(t.LockError_Expired(t.LockExpired(self.name(), 1)))
        if self.released:
            raise Err(t.LockError_Invalid("already released"))
        self.released = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.host.dropped.append(self)


class FakeHost:
    """Files, one busy lock and a log, patched over the binding functions."""

    CONFLICT = t.LockConflict(
        resource="project:p/res:busy",
        owner="sess-1",
        operation="execute plan 0f3c",
        holder="host:42",
        acquired_at=1,
        expires_at=2,
    )

    def __init__(self, files):
        self.files = files
        self.leases, self.dropped, self.lines = [], [], []
        self.lose_leases = False

    def list(self, pattern):
        return sorted(self.files)

    def read(self, path):
        data = self.files.get(path)
        if data is None:
            raise Err(t.FsError_NotFound(path))
        if data == "TOO-LARGE":
            raise Err(t.FsError_TooLarge(1024))
        return data

    def acquire(self, name, ttl_ms):
        if name == "busy":
            raise Err(t.LockError_Conflict(self.CONFLICT))
        lease = FakeLease(self, name)
        self.leases.append(lease)
        return lease

    def log(self, level, message):
        self.lines.append((level, message))

    def patch(self, test):
        for module, attr, fake in [
            (workspace, "list", self.list),
            (workspace, "read", self.read),
            (locks, "acquire", self.acquire),
            (log, "log", self.log),
        ]:
            p = mock.patch.object(module, attr, fake)
            p.start()
            test.addCleanup(p.stop)
        return self


class AppTest(unittest.TestCase):
    FILES = {
        "a.py": b"x = 1  \n",
        "b.txt": b"clean\n",
        "c.bin": b"\xff\xfe  \n",
        "d.log": "TOO-LARGE",
        "e.md": b"no newline",
    }

    def strategize(self, host, **params):
        host.patch(self)
        return app.Strategy().strategize("plan", t.Action("tidy", list(params.items())))

    def test_strategize_proposes_a_step_per_dirty_file(self):
        host = FakeHost(dict(self.FILES))
        plan = self.strategize(host, lock="docs")
        self.assertEqual(plan.summary, "2 of 5 files need cleaning")
        self.assertEqual([s.id for s in plan.steps], ["file-1", "file-2"])
        self.assertEqual(plan.steps[0].title, "Strip trailing whitespace in a.py")
        self.assertEqual(plan.steps[0].targets, ["a.py"])
        self.assertEqual(
            plan.steps[1].params,
            [("path", "e.md"), ("final_newline", "true"), ("lock", "docs")],
        )
        logged = " ".join(m for _, m in host.lines)
        self.assertIn("skipping c.bin: not UTF-8", logged)
        self.assertIn("skipping d.log: larger than the read cap of 1024 bytes", logged)

    def test_strategize_without_final_newline_skips_such_files(self):
        plan = self.strategize(FakeHost(dict(self.FILES)), final_newline="false")
        self.assertEqual([s.targets for s in plan.steps], [["a.py"]])

    def test_bad_param_is_invalid_input(self):
        with self.assertRaises(Err) as e:
            self.strategize(FakeHost({}), final_newline="maybe")
        self.assertIsInstance(e.exception.value, t.PluginError_InvalidInput)

    def test_execute_writes_and_releases_the_lease(self):
        host = FakeHost(dict(self.FILES)).patch(self)
        step = t.Step("file-1", "", [("path", "a.py"), ("lock", "docs")], ["a.py"])
        out = app.Execution().execute("plan", step)
        self.assertEqual(out.changes, [t.Change_Write(t.FileWrite("a.py", b"x = 1\n"))])
        self.assertEqual(out.summary, "Cleaned a.py: 1 line stripped")
        [lease] = host.leases
        self.assertTrue(lease.released)
        self.assertEqual(host.dropped, [lease])

    def test_execute_on_clean_file_changes_nothing(self):
        FakeHost(dict(self.FILES)).patch(self)
        out = app.Execution().execute("plan", t.Step("s", "", [("path", "b.txt")], []))
        self.assertEqual(out.changes, [])
        self.assertEqual(out.summary, "b.txt is already clean")

    def test_lock_conflict_is_returned_unchanged(self):
        host = FakeHost(dict(self.FILES)).patch(self)
        step = t.Step("s", "", [("path", "a.py"), ("lock", "busy")], [])
        with self.assertRaises(Err) as e:
            app.Execution().execute("plan", step)
        self.assertEqual(e.exception.value, t.PluginError_Lock(t.LockError_Conflict(FakeHost.CONFLICT)))
        self.assertTrue(any("held by sess-1" in m for _, m in host.lines))

    def test_lease_lost_before_release_is_a_lock_error(self):
        host = FakeHost(dict(self.FILES)).patch(self)
        host.lose_leases = True
        with self.assertRaises(Err) as e:
            app.Execution().execute("plan", t.Step("s", "", [("path", "a.py")], []))
        self.assertEqual(
            e.exception.value,
            t.PluginError_Lock(t.LockError_Expired(t.LockExpired("project:p/res:trailing-whitespace", 1))),
        )
        self.assertEqual(len(host.dropped), 1)

    def test_failed_read_still_drops_the_lease(self):
        host = FakeHost({}).patch(self)
        with self.assertRaises(Err) as e:
            app.Execution().execute("plan", t.Step("s", "", [("path", "gone.py")], []))
        self.assertIsInstance(e.exception.value, t.PluginError_Permanent)
        self.assertEqual(len(host.dropped), 1)

    def test_missing_path_is_invalid_input_before_locking(self):
        host = FakeHost({}).patch(self)
        with self.assertRaises(Err) as e:
            app.Execution().execute("plan", t.Step("s", "", [], []))
        self.assertIsInstance(e.exception.value, t.PluginError_InvalidInput)
        self.assertEqual(host.leases, [])

    def test_out_of_memory_is_permanent(self):
        host = FakeHost({"a": b"a "})
        with mock.patch.object(app.cleanup, "needs_cleaning", side_effect=MemoryError()):
            with self.assertRaises(Err) as e:
                self.strategize(host)
        self.assertEqual(e.exception.value, t.PluginError_Permanent("out of memory: raise [limits] memory_mb in plugin.toml"))

    def test_unexpected_exception_becomes_permanent(self):
        host = FakeHost({"a": b"a "})
        with mock.patch.object(app.cleanup, "needs_cleaning", side_effect=KeyError("boom")):
            with self.assertRaises(Err) as e:
                self.strategize(host)
        self.assertEqual(e.exception.value, t.PluginError_Permanent("strategize failed: KeyError: 'boom'"))
        [(level, message)] = [line for line in host.lines if line[0] == log.Level.ERROR]
        self.assertIn("app.py", message)
        self.assertIn("in strategize", message)


if __name__ == "__main__":
    unittest.main()
