"""Claim checks no wider than their sentences: what `course validate --full` reports about `cu.claims.check`.

A claims cell (an instructor code cell calling `cu.claims.check`) checks the instructor text right above it.
Each check must give the number as that text states it (the quote fixes the band, `claims.band`), and each
quote in the cell (every string literal that reads as one) must state numbers the text states, to the same
digits: a quote with more or fewer digits than its sentence, or a stale number, is reported, and so is an
explicit band (`check(what, value, low, high)`), which no sentence fixes.
`python -m course_utils.grading.claimbands LAB [LAB ...]` prints what it finds and exits 1 if anything.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

from ..claims import NUMBER, QuoteError, band, number
from .course import Course, CourseError, find_course_root

INSTRUCTOR = "instructor"
_TOKEN = re.compile(rf"(?<![\w.^]){NUMBER}(?![\w])")
# LaTeX as numbers are read: "2.6 \times 10^{8}" is 2.6 × 10^8, a bare power of ten "10^{7}" is 1e7.
_LATEX = [(r"\$", " "), (r"\{,\}", ","), (r"\\times", "×"), (r"\\pm", "±"), (r"\\,|\\;|\\!|~", " "),
          (r"\^\{([^}]*)\}", r"^\1"), (r"\s*[×x]\s*10\^", "×10^"), (r"(?<![\d.×])10\^", "1e")]


def _key(text: str) -> tuple[float, float]:
    """A number as written, sign aside: its value and the half unit of its last digit."""
    n = number(text.lstrip("+-−"))
    return round(n.value, 12), round(n.half_unit, 15)


def stated_numbers(markdown: str) -> set[tuple[float, float]]:
    """Every number a text states, as `_key` writes it (LaTeX's "2.6 \\times 10^{8}" read as "2.6 × 10^8")."""
    text = markdown
    for pattern, repl in _LATEX:
        text = re.sub(pattern, repl, text)
    text = text.replace("−", "-")
    found = set()
    for token in _TOKEN.findall(text):
        try:
            found.add(_key(token.strip()))
        except QuoteError:
            continue
    return found


def _is_check(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "check"
            and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "claims")


def _quotes(tree: ast.AST, checks: list[ast.Call]) -> list[str]:
    """The string literals of a claims cell that read as quotes (the names of claims aside)."""
    names = {id(c.args[0]) for c in checks if c.args}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in names:
            try:
                band(node.value)
            except QuoteError:
                continue
            found.append(node.value)
    return found


def cell_problems(code: str, text: str) -> list[str]:
    """What is wrong with one claims cell's checks, given the instructor text above it."""
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        return [f"cannot parse the claims cell: {err}"]
    checks = [node for node in ast.walk(tree) if _is_check(node)]
    problems = []
    for call in checks:
        what = ast.unparse(call.args[0]) if call.args else "?"
        quote = call.args[2] if len(call.args) > 2 else next((k.value for k in call.keywords if k.arg == "quoted"),
                                                              None)
        if len(call.args) > 3 or any(k.arg == "high" for k in call.keywords) or (
                isinstance(quote, ast.Constant) and not isinstance(quote.value, str)) or (
                isinstance(quote, ast.UnaryOp) and isinstance(quote.operand, ast.Constant)):
            problems.append(f"the check {what} gives an explicit band: give the number as the text states it")
    stated = stated_numbers(text)
    for quote in _quotes(tree, checks):
        numbers = re.findall(NUMBER, quote.replace("about", ""))
        missing = [n for n in numbers if _key(n) not in stated and _key(n)[0] != 0]
        if missing:
            problems.append(f"the quote {quote!r} states {', '.join(missing)}, which the text above it does not "
                            "state to these digits")
    return problems


def notebook_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Every claims cell's problems in a source notebook, each named by the cell's id."""
    problems, text = [], []
    for cell in nb.cells:
        instructor = INSTRUCTOR in cell.metadata.get("tags", [])
        if cell.cell_type == "markdown" and instructor:
            text.append(cell.source)
            continue
        if cell.cell_type == "code" and instructor and "claims.check" in cell.source:
            problems += [f"claims cell {cell.get('id', '?')}: {p}" for p in cell_problems(cell.source, "\n".join(text))]
        text = []
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.grading.claimbands",
                                     description="Find claim checks wider than the sentences they check.")
    parser.add_argument("labs", nargs="+", help="labs to check")
    parser.add_argument("--course-dir", type=Path, default=None, help="the course folder (default: found from here)")
    args = parser.parse_args(argv)
    try:
        course = Course(find_course_root(args.course_dir))
        labs = course.check_labs(args.labs)
    except CourseError as err:
        print(f"claimbands: {err}", file=sys.stderr)
        return 1
    problems = [f"{lab}: {p}" for lab in labs
                for p in notebook_problems(nbformat.read(course.source_notebook(lab), as_version=4))]
    for problem in problems:
        print(problem)
    print(f"claimbands: {len(problems)} problem(s) in {', '.join(labs)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
