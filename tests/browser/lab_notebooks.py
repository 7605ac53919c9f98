"""What the browser tests expect to see, read from the labs' own files (release, source, mistakes.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils.grading.course import Course

REPO = Path(__file__).resolve().parents[2]
PLOTLY_LAB = "bn_from_scratch"  # the lab whose figure must be an interactive plotly chart
IMAGE_MIME, PLOTLY_MIME = "image/png", "application/vnd.plotly.v1+json"

DEFINES = re.compile(r"^\s*(def|class)\s", re.MULTILINE)


def release_labs() -> list[str]:
    """Labs with a student notebook in `release/`."""
    folder = REPO / "release"
    return sorted(p.name for p in folder.iterdir() if (p / f"{p.name}.ipynb").is_file()) if folder.is_dir() else []


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def nbgrader(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def is_stub(cell: nbformat.NotebookNode) -> bool:
    """A code cell the student must fill in."""
    return cell.cell_type == "code" and nbgrader(cell).get("solution", False)


def is_written_answer(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "markdown" and nbgrader(cell).get("solution", False)


def is_test(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and nbgrader(cell).get("grade", False) and not nbgrader(cell).get("solution")


def has_visible_asserts(cell: nbformat.NotebookNode) -> bool:
    """A test cell that shows more than its docstring in the release (the rest are hidden tests)."""
    return is_test(cell) and len(cell.source.strip().splitlines()) > 1


def first_line(cell: nbformat.NotebookNode) -> str:
    return cell.source.strip().splitlines()[0]


def without_solution_markers(source: str) -> str:
    """A solution cell as a student would write it: the instructor's answer without nbgrader's markers."""
    markers = {"### BEGIN SOLUTION", "### END SOLUTION"}
    return "\n".join(line for line in source.splitlines() if line.strip() not in markers)


@dataclass
class Exercise:
    """One exercise of a release notebook, with a right and a typical wrong answer to type into it."""

    lab: str
    cell: int  # index of the stub cell in the notebook
    test: int  # index of the first visible test after it
    answer: str
    wrong_answer: str
    mistake: str  # what the wrong answer gets wrong, from mistakes.py
    next_test: str | None  # first line of the next exercise's visible test, which fails while that stub stays
    earlier: list[tuple[int, str]]  # (index, answer) of the stubs before it, answered first as a student would


def first_exercise_with_mistake(lab: str) -> Exercise:
    """The first exercise whose visible test a listed typical mistake fails, so both outcomes can be shown.

    Only exercises that define a function or class count: a prediction's visible test checks only its form
    (the right value stays hidden), so no wrong prediction fails it."""
    course = Course(REPO)
    release, source = read(course.release_notebook(lab)), read(course.source_notebook(lab))
    by_id = {nbgrader(c).get("grade_id"): c for c in source.cells}
    cells = release.cells
    for i, cell in enumerate(cells):
        if not is_stub(cell):
            continue
        grade_id = nbgrader(cell)["grade_id"]
        if not DEFINES.search(by_id[grade_id].source):
            continue
        test = next((j for j in range(i + 1, len(cells)) if has_visible_asserts(cells[j])), None)
        if test is None:
            continue
        test_id = nbgrader(cells[test])["grade_id"]
        for mistake in course.mistakes(lab):
            if set(mistake.edits) == {grade_id} and test_id in mistake.loses:
                wrong = course.notebook_with_mistake(lab, mistake)
                wrong_cell = next(c for c in wrong.cells if nbgrader(c).get("grade_id") == grade_id)
                stub = next((j for j in range(test, len(cells)) if is_stub(cells[j])), len(cells))
                after = next((first_line(c) for c in cells[stub:] if has_visible_asserts(c)), None)
                earlier = [(j, without_solution_markers(by_id[nbgrader(cells[j])["grade_id"]].source))
                           for j in range(i) if is_stub(cells[j])]
                return Exercise(lab, i, test, without_solution_markers(by_id[grade_id].source),
                                without_solution_markers(wrong_cell.source), mistake.explanation, after, earlier)
    raise AssertionError(f"{lab}: no exercise has a typical mistake in mistakes.py that fails its first visible test.")


def figure_counts(nb: nbformat.NotebookNode) -> tuple[int, int]:
    """How many matplotlib images and plotly figures a notebook's saved outputs hold."""
    images = plotly = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            plotly += PLOTLY_MIME in data
            images += IMAGE_MIME in data and PLOTLY_MIME not in data
    return images, plotly


def without_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` as before its first run, so that every figure the browser shows is drawn anew."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def last_error(outputs: str) -> tuple[str, str] | None:
    """(exception name, message) of the traceback ending a cell's output text, or None without one."""
    if "Traceback" not in outputs:
        return None
    lines = outputs.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        found = re.match(r"(\w+(?:Error|Exception|Interrupt)): ?(.*)", lines[i])
        if found:
            return found.group(1), "\n".join([found.group(2), *lines[i + 1:]]).strip()
    return "unknown", lines[-1]
