"""Are claim checks exactly as precise as the sentences they check, and does `--full` report wider ones?"""

import math

import nbformat
import pytest
import torch

import course_utils as cu
from course_utils.claims import Band, ClaimError, QuoteError, band
from course_utils.grading import claimbands


@pytest.mark.parametrize("quoted, low, high", [
    ("0.539", 0.5385, 0.5395),
    ("2.9", 2.85, 2.95),
    ("484", 483.5, 484.5),
    ("1,628", 1627.5, 1628.5),
    ("3,400", 3399.5, 3400.5),
    ("about 3,400", 3350, 3450),
    ("about 1", 0.5, 1.5),
    ("about 0.30", 0.25, 0.35),
    ("0.539 ± 0.018", 0.5205, 0.5575),
    ("0 ± 0.05", -0.055, 0.055),
    ("+0.010 ± 0.008", 0.0015, 0.0185),
    ("0.29 to 0.44", 0.285, 0.445),
    ("2.6e8", 2.55e8, 2.65e8),
    ("2.6 × 10^8", 2.55e8, 2.65e8),
    ("1e-3", 0.5e-3, 1.5e-3),
    ("−0.03", -0.035, -0.025),
    ("< 2", -math.inf, 2),
    ("> 1e6", 1e6, math.inf),
])
def test_band_is_the_quotes_rounding_plus_its_stated_spread(quoted, low, high):
    """Is each quote's band its last digit's half unit (trailing zeros dropped after "about"), plus any ± spread?"""
    got = band(quoted)
    assert got.low == pytest.approx(low, rel=1e-12) and got.high == pytest.approx(high, rel=1e-12), (quoted, got)


@pytest.mark.parametrize("quoted", ["", "0.5 %", "roughly 1", "0.44 to 0.29", "1 ± -0.1", "<= 2", "0.1.2", "1e"])
def test_a_quote_in_no_known_form_raises_quote_error(quoted):
    """Does a typo, a unit, a backwards range or a negative spread raise a QuoteError naming the quote?"""
    with pytest.raises(QuoteError, match="quote|number|range|spread"):
        band(quoted)


def test_check_fails_just_outside_the_rounding_of_a_three_digit_quote(monkeypatch):
    """Is "0.539" met by 0.5386 and 0.5394 but not by 0.5384 or 0.540, in a full run (tensors accepted)?"""
    monkeypatch.delenv("COURSE_QUICK", raising=False)
    for inside in (0.5386, torch.tensor(0.5394)):
        cu.claims.check("a spread", inside, "0.539")
    for outside in (0.5384, 0.540, math.nan):
        with pytest.raises(ClaimError, match=r"a spread is 0\.539 \(allowing \[0\.5385, 0\.5395\]\)"):
            cu.claims.check("a spread", outside, "0.539")


def test_the_old_wrong_learning_rate_no_longer_passes(monkeypatch):
    """Does "about 1" refuse the stale 0.1 that the old band 0.09 to 1.01 let through?"""
    monkeypatch.delenv("COURSE_QUICK", raising=False)
    cu.claims.check("the largest stable lr", 1.0, "about 1")
    with pytest.raises(ClaimError):
        cu.claims.check("the largest stable lr", 0.1, "about 1")


def test_quick_runs_skip_the_value_but_not_a_malformed_quote(monkeypatch):
    """Under COURSE_QUICK, is a wrong value let through but a malformed quote still an error?"""
    monkeypatch.setenv("COURSE_QUICK", "1")
    cu.claims.check("anything", 99.0, "0.539")
    with pytest.raises(QuoteError):
        cu.claims.check("anything", 0.539, "0,539")


def test_a_band_is_only_ever_a_quote(monkeypatch):
    """Is a check with explicit ends, or a number in place of the quote, refused in quick runs too?"""
    monkeypatch.setenv("COURSE_QUICK", "1")
    with pytest.raises(TypeError):
        cu.claims.check("x", 0.5, 0.4)
    with pytest.raises(TypeError):
        cu.claims.check("x", 0.5, "0.5", 0.6)
    assert 0.5 in Band(0.4, 0.5) and 0.50001 not in Band(0.4, 0.5)


def test_text_numbers_are_read_from_latex_and_thousands():
    """Does the text reader see 2.34 × 10^4, 10^7, 1,628, LaTeX's 73{,}600 and ±, each with its written digits?"""
    stated = claimbands.stated_numbers(r"ratio $2.34 \times 10^{4}$, some $10^7$, 1,628 of 2,801, $L \approx 73{,}600$, "
                                       r"$+0.010 \pm 0.008$, within $10^{-12}$, 4.1x10^-3")
    for quoted in ["2.34e4", "1e7", "1628", "2801", "73,600", "0.010", "0.008", "1e-12", "4.1e-3"]:
        assert claimbands._key(quoted) in stated, quoted
    assert claimbands._key("0.01") not in stated  # the same value written with fewer digits


def _notebook(text: str, code: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text, metadata={"tags": ["instructor"]}),
                nbformat.v4.new_code_cell(code, metadata={"tags": ["instructor"]})]
    return nb


def test_full_validation_reports_an_explicit_band():
    """Is an old-form check reported as an explicit band, and a matching quote not reported?"""
    nb = _notebook("The spread is 0.539.", 'cu.claims.check("the spread", s, 0.52, 0.56)\n'
                                           'cu.claims.check("the spread", s, "0.539")')
    problems = claimbands.notebook_problems(nb)
    assert len(problems) == 1 and "explicit band" in problems[0], problems


@pytest.mark.parametrize("quoted", ["0.54", "0.5390", "0.1", "0.539 ± 0.02"])
def test_full_validation_reports_a_quote_its_sentence_does_not_state(quoted):
    """Is a quote with other digits than the text above it (or a stale number) reported?"""
    nb = _notebook("Its spread is 0.539 ± 0.018; the largest stable rate is 1.",
                   f'for q in ["0.539 ± 0.018", "{quoted}"]:\n    cu.claims.check("the spread", s, q)')
    problems = claimbands.notebook_problems(nb)
    assert len(problems) == 1 and repr(quoted) in problems[0], problems


def test_only_the_text_right_above_a_claims_cell_counts():
    """Is a number stated in an earlier instructor cell, not the one above the claims cell, reported?"""
    nb = _notebook("Its spread is 0.539.", 'cu.claims.check("the spread", s, "0.539")')
    nb.cells += [nbformat.v4.new_markdown_cell("Another result: 2.9.", metadata={"tags": ["instructor"]}),
                 nbformat.v4.new_code_cell('cu.claims.check("x", x, "0.539")', metadata={"tags": ["instructor"]})]
    problems = claimbands.notebook_problems(nb)
    assert len(problems) == 1 and "0.539" in problems[0], problems
