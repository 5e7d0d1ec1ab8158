"""Unit tests of the pure logic: `python3 -m unittest` in this folder."""

import unittest

from lockstep_sdk import InvalidInput
from markers import parse_markers, upper_case_markers


class UpperCaseMarkers(unittest.TestCase):
    def test_markers_in_another_case_are_upper_cased(self):
        defaults = parse_markers(None)
        text = "// todo: parse\n# Fixme: tabs\n/* TODO: done */\nmastodon: no\ntodo no colon\n"
        self.assertEqual(
            upper_case_markers(text, defaults),
            "// TODO: parse\n# FIXME: tabs\n/* TODO: done */\nmastodon: no\ntodo no colon\n",
        )
        self.assertIsNone(upper_case_markers("TODO: x\n", defaults))

    def test_only_whole_words_followed_by_a_colon_change(self):
        defaults = parse_markers(None)
        self.assertEqual(upper_case_markers("é todo: ü", defaults), "é TODO: ü")
        self.assertIsNone(upper_case_markers("mastodon: todo - fixme\n", defaults))

    def test_params_are_checked(self):
        self.assertEqual(parse_markers("note, hack"), ["NOTE", "HACK"])
        with self.assertRaisesRegex(InvalidInput, "to-do"):
            parse_markers("to-do")
        with self.assertRaises(InvalidInput):
            parse_markers(" , ")


if __name__ == "__main__":
    unittest.main()
