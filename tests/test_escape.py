"""Does submission-derived text reach a terminal without control sequences, and a spreadsheet without formulas?"""

from __future__ import annotations

import pytest

from course_utils.grading.escape import for_csv, for_terminal

ATTACKS = [
    "\x1b[2J\x1b[H",  # erase the screen, cursor home
    "\x1b[1A\x1b[2Kada  17/17",  # rewrite the row above
    "\x1b]0;title\x07",  # operating-system command
    "\x9b2J",  # the one-byte control sequence introducer
    "x\rbob  17/17",  # carriage return overprints the line
    "evil\u202etxt.ipynb",  # right-to-left override
    "a\x00b\x08c\x7f",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_no_control_character_survives_for_a_terminal(text):
    shown = for_terminal(text)
    assert all(ch.isprintable() for ch in shown), repr(shown)


def test_escapes_are_visible_and_ordinary_text_is_unchanged():
    assert for_terminal("\x1b[2J") == "\\x1b[2J"
    assert for_terminal("line\nnext\ttab") == "line\\nnext\\ttab"
    assert for_terminal("Conv_shapes (1).ipynb — café") == "Conv_shapes (1).ipynb — café"


def test_terminal_text_is_bounded():
    shown = for_terminal("x" * 10_000, 50)
    assert shown == "x" * 50 + "…"
    assert len(for_terminal("\x1b" * 1000, 50)) == 51  # escapes count towards the bound


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_a_cell_that_would_start_a_formula_is_prefixed(cell):
    assert for_csv(cell) == "'" + cell


def test_plain_cells_and_numbers_pass_unchanged():
    assert for_csv("ada") == "ada"
    assert for_csv(-2.5) == "-2.5"
    assert for_csv(16.0) == "16"
    assert for_csv(3) == "3"
    assert for_csv(None) == ""
