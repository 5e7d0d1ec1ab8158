"""Tests of the Python SDK, with a plain CPython, from `sdk/python`:

    python3 -m unittest discover -s tests

The stub bindings in `stubs/` stand in for the component's; the host calls
are replaced by fakes. (Plain `python3 -m unittest` in `sdk/python` would
import `lockstep_sdk` before these tests put the stubs on the path.)
"""

from __future__ import annotations

import os
import sys
import unittest
from unittest import mock

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_HERE, os.path.join(_HERE, "stubs")]

import lockstep_sdk as sdk  # noqa: E402
from componentize_py_types import Err  # noqa: E402
from wit_world.imports import locks, log, workspace  # noqa: E402
from wit_world.imports import types as t  # noqa: E402


class ParamsTest(unittest.TestCase):
    def test_values_come_with_defaults(self):
        p = sdk.Params([("a", "1"), ("a", "2"), ("globs", " *.md, ,src/** ")])
        self.assertEqual(p.get("a"), "1")
        self.assertIsNone(p.get("b"))
        self.assertEqual(p.get("b", "x"), "x")
        self.assertEqual(p.list("globs", "**/*"), ["*.md", "src/**"])
        self.assertEqual(p.list("other", "**/*"), ["**/*"])
        self.assertEqual(p.number("a", 7), 1)
        self.assertEqual(p.number("b", 7), 7)
        self.assertEqual(p.pick("globs", "b"), [("globs", " *.md, ,src/** ")])

    def test_flags_take_any_case_and_blank_is_the_default(self):
        p = sdk.Params([("on", " TRUE "), ("off", "False"), ("blank", " ")])
        self.assertTrue(p.flag("on", False))
        self.assertFalse(p.flag("off", True))
        self.assertTrue(p.flag("blank", True))
        self.assertFalse(p.flag("absent", False))

    def test_refusals_name_the_param_and_the_value(self):
        p = sdk.Params([("n", "ten"), ("f", "yes"), ("blank", "  ")])
        for call, message in [
            (lambda: p.number("n", 0), "param `n` must be a whole number, not 'ten'"),
            (lambda: p.flag("f", False), "param `f` must be \"true\" or \"false\", not 'yes'"),
            (lambda: p.required("blank"), "param `blank` is required"),
            (lambda: p.required("none"), "param `none` is required"),
        ]:
            with self.assertRaises(sdk.InvalidInput) as e:
                call()
            self.assertEqual(str(e.exception), message)


class FakeHost:
    """Files, one busy lock and a log, patched over the binding functions."""

    CONFLICT = t.LockConflict("project:p/res:busy", "sess-1", "migrate", "host:42", 1, 2)

    def __init__(self, test, files=None):
        self.files = files or {}
        self.lines: list[tuple[object, str]] = []
        self.dropped: list[str] = []
        self.lose = False
        for module, attr, fake in [
            (workspace, "list", self.list),
            (workspace, "read", self.read),
            (locks, "acquire", self.acquire),
            (log, "log", lambda level, message: self.lines.append((level, message))),
        ]:
            patch = mock.patch.object(module, attr, fake)
            patch.start()
            test.addCleanup(patch.stop)

    def list(self, glob):
        if glob == "huge":
            raise Err(t.FsError_TooLarge(100_000))
        return sorted(p for p in self.files if p.endswith(glob[-3:]))

    def read(self, path):
        if path == "big":
            raise Err(t.FsError_TooLarge(8))
        if path == "../x":
            raise Err(t.FsError_Denied("leaves the project"))
        if path not in self.files:
            raise Err(t.FsError_NotFound(path))
        return self.files[path]

    def acquire(self, name, ttl_ms):
        if name == "busy":
            raise Err(t.LockError_Conflict(self.CONFLICT))
        host = self

        class Handle:
            def name(self):
                return f"project:p/res:{name}"

            def token(self):
                return 7

            def release(self):
                if host.lose:
                    raise Err(t.LockError_Expired(t.LockExpired(self.name(), 7)))

            def __exit__(self, *exc):
                host.dropped.append(name)

        return Handle()

    def logged(self) -> str:
        return "\n".join(message for _, message in self.lines)


class WorkspaceTest(unittest.TestCase):
    def test_text_files_and_what_is_not_text(self):
        FakeHost(self, {"a.txt": "é\n".encode(), "b.bin": b"\xff"})
        self.assertEqual(sdk.read_text("a.txt"), "é\n")
        with self.assertRaisesRegex(sdk.NotText, "^b.bin: not UTF-8 text$") as e:
            sdk.read_text("b.bin")
        self.assertFalse(e.exception.too_large)
        with self.assertRaisesRegex(sdk.NotText, "^big: larger than the read cap of 8 bytes$") as e:
            sdk.read_text("big")
        self.assertTrue(e.exception.too_large)

    def test_what_is_not_text_is_skipped_and_logged(self):
        host = FakeHost(self, {"a.txt": b"a", "b.bin": b"\xff"})
        self.assertEqual(sdk.read_text_or_skip("a.txt"), "a")
        self.assertIsNone(sdk.read_text_or_skip("b.bin"))
        self.assertIsNone(sdk.read_text_or_skip("big"))
        self.assertEqual(
            [(level, m) for level, m in host.lines],
            [(log.Level.DEBUG, "skipping b.bin: not UTF-8 text"),
             (log.Level.WARN, "skipping big: larger than the read cap of 8 bytes")],
        )
        with self.assertRaises(sdk.Permanent):
            sdk.read_text_or_skip("gone")

    def test_refusals_become_the_failure_to_raise(self):
        FakeHost(self)
        with self.assertRaisesRegex(sdk.Permanent, "^gone: not found: gone$"):
            sdk.read_text("gone")
        with self.assertRaisesRegex(sdk.Permanent, "denied: leaves the project"):
            sdk.read_bytes("../x")
        self.assertIsInstance(sdk.fs_failure("x[", t.FsError_Invalid("bad glob")), sdk.InvalidInput)
        self.assertIsInstance(sdk.fs_failure("x", t.FsError_Io("EIO")), sdk.Retryable)

    def test_files_of_several_globs_are_sorted_once(self):
        host = FakeHost(self, {"b.md": b"", "a.md": b"", "c.rs": b""})
        self.assertEqual(sdk.list_files(["*.md", "**/*.md", "*.rs"]), ["a.md", "b.md", "c.rs"])
        self.assertIn("*.md: 2 files", host.logged())
        with self.assertRaises(sdk.Permanent) as e:
            sdk.list_files(["huge"])
        self.assertEqual(
            str(e.exception),
            "huge: matches more than 100000 files, the most one list returns; use narrower globs",
        )

    def test_changes_carry_bytes(self):
        self.assertEqual(sdk.write_text("a", "é"), t.Change_Write(t.FileWrite("a", "é".encode())))
        self.assertEqual(sdk.delete("a"), t.Change_Delete("a"))
        with self.assertRaisesRegex(TypeError, "must be bytes, not str"):
            sdk.write_bytes("a", "text")  # type: ignore[arg-type]


class LeaseTest(unittest.TestCase):
    def test_leaving_the_block_releases_the_lease(self):
        host = FakeHost(self)
        with sdk.lease("index") as lease:
            self.assertEqual((lease.resource, lease.token), ("project:p/res:index", 7))
        self.assertEqual(host.dropped, ["index"])

    def test_a_lease_lost_meanwhile_fails_the_block(self):
        host = FakeHost(self)
        host.lose = True
        with self.assertRaises(sdk.LockFailed) as e:
            with sdk.lease("index"):
                pass
        self.assertIsInstance(e.exception.to_wit(), t.PluginError_Lock)
        self.assertEqual(host.dropped, ["index"])
        self.assertIn("lease index: expired", host.logged())

    def test_an_exception_in_the_block_drops_the_lease_and_goes_on(self):
        host = FakeHost(self)
        with self.assertRaises(KeyError):
            with sdk.lease("index") as lease:
                lease.release()
                raise KeyError("x")
        self.assertEqual(host.dropped, ["index"])

    def test_a_conflict_is_logged_and_returned_unchanged(self):
        host = FakeHost(self)
        with self.assertRaises(sdk.LockFailed) as e:
            sdk.lease("busy")
        self.assertEqual(e.exception.to_wit(), t.PluginError_Lock(t.LockError_Conflict(FakeHost.CONFLICT)))
        self.assertIn("lease busy: held by sess-1 (migrate) on host:42", host.logged())


class Strategy(sdk.Strategy):
    def __init__(self, body):
        self.body = body

    def strategize(self, plan_id, action):
        return self.body(action)


class Execution(sdk.Execution):
    def __init__(self, outcome):
        self.outcome = outcome

    def execute(self, plan_id, step):
        return self.outcome


def _raise(e):
    raise e


class ExportsTest(unittest.TestCase):
    def strategize(self, error):
        with self.assertRaises(Err) as e:
            Strategy(lambda action: _raise(error)).strategize("plan", t.Action("a", []))
        return e.exception.value

    def test_failures_become_the_plugin_error(self):
        FakeHost(self)
        self.assertEqual(self.strategize(sdk.InvalidInput("bad")), t.PluginError_InvalidInput("bad"))
        self.assertEqual(self.strategize(sdk.Retryable("later")), t.PluginError_Retryable("later"))
        self.assertEqual(self.strategize(sdk.NotText("a: not UTF-8 text")),
                         t.PluginError_Permanent("a: not UTF-8 text"))
        wit = t.PluginError_InvalidInput("raw")
        self.assertEqual(self.strategize(Err(wit)), wit)
        self.assertEqual(self.strategize(MemoryError()),
                         t.PluginError_Permanent("out of memory: raise [limits] memory_mb in plugin.toml"))

    def test_a_bug_is_permanent_and_logged_with_where_it_was(self):
        host = FakeHost(self)
        self.assertEqual(self.strategize(KeyError("boom")),
                         t.PluginError_Permanent("strategize failed: KeyError: 'boom'"))
        self.assertIn("test_sdk.py", host.logged())
        self.assertIn("in _raise", host.logged())

    def test_an_answer_passes_through(self):
        proposal = t.PlanProposal("s", [])
        self.assertIs(Strategy(lambda action: proposal).strategize("plan", t.Action("a", [])), proposal)

    def test_a_str_given_as_contents_is_refused_naming_the_field(self):
        FakeHost(self)
        outcome = t.StepOutcome([t.Change_Write(t.FileWrite("a.txt", "text"))], "s")  # type: ignore[arg-type]
        with self.assertRaises(Err) as e:
            Execution(outcome).execute("plan", t.Step("file-1", "", [], []))
        self.assertEqual(
            e.exception.value,
            t.PluginError_Permanent(
                "step `file-1`: change `a.txt`: `contents` must be bytes (got str); "
                "use text.encode('utf-8'), or sdk.write_text(path, text)"
            ),
        )
        good = t.StepOutcome([sdk.write_text("a.txt", "text"), sdk.delete("b")], "s")
        self.assertIs(Execution(good).execute("plan", t.Step("file-1", "", [], [])), good)

    def test_other_wrong_outcomes_are_named(self):
        FakeHost(self)
        step = t.Step("s", "", [], [])
        for outcome, message in [
            (None, "step `s`: `execute` must return a StepOutcome (got NoneType)"),
            (t.StepOutcome([t.Change_Delete(3)], "s"), "step `s`: change 1: a delete's path must be a str (got int)"),  # type: ignore[arg-type]
            (t.StepOutcome(["a"], "s"), "step `s`: change 1 must be a Change_Write or a Change_Delete (got str)"),  # type: ignore[list-item]
        ]:
            with self.assertRaises(Err) as e:
                Execution(outcome).execute("plan", step)
            self.assertEqual(e.exception.value, t.PluginError_Permanent(message))


class ProgressTest(unittest.TestCase):
    def test_each_unit_is_reported(self):
        from wit_world.imports import progress

        reports = []
        with mock.patch.object(progress, "report", lambda *a: reports.append(a)):
            p = sdk.Progress(2)
            p.advance("a")
            p.advance("b")
        self.assertEqual(reports, [(1, 2, "a"), (2, 2, "b")])


if __name__ == "__main__":
    unittest.main()
