"""Unit tests of the pure logic: `python3 -m unittest` in this folder."""

import unittest

from markers import (
    ParamError,
    contents_problem,
    parse_markers,
    split_globs,
    upper_case_markers,
)


class UpperCaseMarkers(unittest.TestCase):
    def test_markers_in_another_case_are_upper_cased(self):
        defaults = parse_markers(None)
        text = "// todo: parse\n# Fixme: tabs\n/* TODO: done */\nmastodon: no\ntodo no colon\n"
        self.assertEqual(
            upper_case_markers(text, defaults),
            "// TODO: parse\n# FIXME: tabs\n/* TODO: done */\nmastodon: no\ntodo no colon\n",
        )
        self.assertIsNone(upper_case_markers("TODO: x\n", defaults))
        self.assertEqual(upper_case_markers("é todo: ü", defaults), "é TODO: ü")

    def test_params_are_checked(self):
        self.assertEqual(parse_markers("note, hack"), ["NOTE", "HACK"])
        with self.assertRaisesRegex(ParamError, "to-do"):
            parse_markers("to-do")
        with self.assertRaises(ParamError):
            parse_markers(" , ")
        self.assertEqual(split_globs("*.md, src/**"), ["*.md", "src/**"])
        self.assertEqual(split_globs(None), ["**/*"])


class ContentsProblem(unittest.TestCase):
    def test_a_str_given_as_contents_is_refused_naming_the_field(self):
        self.assertEqual(
            contents_problem("file-1", "a.txt", "text"),
            "step `file-1`: change `a.txt`: `contents` must be bytes (got str); "
            "use text.encode('utf-8')",
        )
        self.assertIsNone(contents_problem("file-1", "a.txt", b"text"))


if __name__ == "__main__":
    unittest.main()
