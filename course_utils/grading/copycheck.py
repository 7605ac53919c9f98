"""The copy check: no autograded prediction may accept a value the lab shows the student.

For each prediction (an answer cell's `prediction_... = ...`), the candidates are the numbers, shapes and
words that the committed full run prints after the prediction cell, and, for numbers and shapes, those the
release's markdown and visible code state (a choice's question names all its options), each of the
solution's type. Instructor cells are left out, and so are echoes: in a cell that reads a prediction, each
line from "predict" on (print the student's value last on its line: "measured 0.68 (you predicted 0.7)").
Each candidate takes the place of the prediction and the prediction's tests grade it, all in one kernel
(`mutants.run_batch`); one that passes every test could be copied instead of thought.
`python -m course_utils.grading.copycheck LAB [LAB ...]` prints what it finds and exits 1 if anything.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

from ..runtime import QUICK_ENV
from ..testing import parse
from .classroom import bundle_from, default_limits, kernel_env
from .course import Course, CourseError, find_course_root
from .jobs import GradeJob, nbgrader_id
from .mutants import MutantBatch, graded_slice, run_batch
from .pool import GradingPool
from .referee import free_names

PREFIX = "prediction"
ECHO = "predict"  # in the output of a cell that reads a prediction, a line from this word on echoes the student
MAX_CANDIDATES = 400  # per prediction: what the run prints after it comes first, then the release's text
CELL_S = 60  # a candidate that makes a test run longer than this fails that test

NUMBER = re.compile(r"(?<![\w.])-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])\s?%?")
SHAPE = re.compile(r"[(\[]\s*-?\d+\s*(?:,\s*-?\d+\s*)*,?\s*[)\]]|\b\d+(?:\s*[x×]\s*\d+)+\b")
WORD = re.compile(r"[A-Za-z_][\w.=+-]*")
QUOTED = re.compile(r"""(['"])([^'"\n]{1,60})\1""")


@dataclass(frozen=True)
class Prediction:
    """One autograded prediction: the name its answer cell assigns, what kind of value it is, and its tests."""

    cell: str  # grade_id of the answer cell
    name: str  # the name the cell assigns, prediction_...
    kind: str  # "int", "float", "shape" or "word"
    container: type  # tuple or list, for shapes
    tests: tuple[str, ...]  # grade_ids of the autograded tests that read the name
    index: int  # the answer cell's position in the source notebook


@dataclass(frozen=True)
class Candidate:
    """A value a student could copy, and where the lab shows it."""

    value: object
    origin: str  # "printed by cell 12 after it", "stated in release cell 3"


def _solution_kind(node: ast.expr) -> tuple[str | None, type]:
    """The kind of value an assignment's right-hand side gives: computed where it needs only math and NumPy,
    else read from its form (a string, a tuple or list, or a number)."""
    try:
        value = eval(compile(ast.Expression(node), "<prediction>", "eval"), {"math": math, "np": np})
    except Exception:
        value = node.value if isinstance(node, ast.Constant) else \
            (1,) if isinstance(node, ast.Tuple) else [1] if isinstance(node, ast.List) else 1.0
    if isinstance(value, bool):
        return None, tuple
    if isinstance(value, str):
        return "word", tuple
    if isinstance(value, (tuple, list)):
        sizes = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
        return ("shape" if sizes and value else None), type(value)
    if isinstance(value, (int, np.integer)):
        return "int", tuple
    if isinstance(value, (float, np.floating)):
        return "float", tuple
    return None, tuple


def _assignments(source: str) -> dict[str, ast.Assign]:
    """The `prediction_...` names a cell assigns at its top level, with their statements."""
    try:
        tree = parse(source)
    except SyntaxError:
        return {}
    return {node.targets[0].id: node for node in tree.body if isinstance(node, ast.Assign)
            and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.startswith(PREFIX)}


def predictions(source: nbformat.NotebookNode, tests: dict[str, str]) -> list[Prediction]:
    """Every autograded prediction of a source notebook whose value is a number, a shape or a word."""
    readers: dict[str, list[str]] = {}
    for gid, code in tests.items():
        try:
            for name in free_names(code):
                readers.setdefault(name, []).append(gid)
        except SyntaxError:
            continue
    found = []
    for index, cell in enumerate(source.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        for name, node in _assignments(cell.source).items():
            kind, container = _solution_kind(node.value)
            if kind and readers.get(name):
                found.append(Prediction(nbgrader_id(cell), name, kind, container, tuple(readers[name]), index))
    return found


def _reads_a_prediction(source: str) -> bool:
    """Whether a cell reads a prediction (some of its output may then echo the student's own value)."""
    try:
        return any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id.startswith(PREFIX)
                   for n in ast.walk(parse(source)))
    except SyntaxError:
        return PREFIX in source


def _output_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        text = out.get("text") if out.get("output_type") == "stream" else out.get("data", {}).get("text/plain")
        if text:
            parts.append(text if isinstance(text, str) else "".join(text))
    return "\n".join(parts)


def _numbers(text: str, as_int: bool) -> list[object]:
    found = []
    for match in NUMBER.findall(text):
        token = match.replace(" ", "")
        share = token.endswith("%")
        token = token.rstrip("%")
        value = int(token) if re.fullmatch(r"-?\d+", token) else float(token)
        values = [value, -value] if value < 0 else [value]
        if share:
            values += [v / 100 for v in values]
        for v in values:
            found.append(v)
            if as_int and isinstance(v, float) and v.is_integer():
                found.append(int(v))
    return found


def _shapes(text: str, container: type) -> list[object]:
    return [container(int(d) for d in re.findall(r"-?\d+", match)) for match in SHAPE.findall(text)]


def _words(text: str) -> list[object]:
    words = [w.rstrip(".=+-") for w in WORD.findall(text)] + [q for _, q in QUOTED.findall(text)]
    return [w for w in words if w]


def _values(text: str, prediction: Prediction) -> list[object]:
    if prediction.kind == "shape":
        return _shapes(text, prediction.container)
    if prediction.kind == "word":
        return _words(text)
    return _numbers(text, prediction.kind == "int")


def candidates(source: nbformat.NotebookNode, release: nbformat.NotebookNode,
               prediction: Prediction) -> list[Candidate]:
    """The values of the prediction's kind that the full run prints after it and (numbers and shapes) the release
    states, in that order, each once, at most MAX_CANDIDATES."""
    found: dict[tuple[str, str], Candidate] = {}

    def add(text: str, origin: str) -> None:
        for value in _values(text, prediction):
            found.setdefault((type(value).__name__, repr(value)), Candidate(value, origin))

    for index in range(prediction.index + 1, len(source.cells)):
        cell = source.cells[index]
        if cell.cell_type == "code" and "instructor" not in cell.metadata.get("tags", []):
            text = _output_text(cell)
            if _reads_a_prediction(cell.source):  # a line's end from "predict" on echoes the student's own values
                text = "\n".join(line[:line.lower().find(ECHO)] if ECHO in line.lower() else line
                                 for line in text.splitlines())
            add(text, f"printed by cell {index + 1} after it")
    if prediction.kind != "word":  # a choice's question names every option: only a run can give one away
        for index, cell in enumerate(release.cells):
            add(cell.source, f"stated in release cell {index + 1}")
    return list(found.values())[:MAX_CANDIDATES]


def with_value(source: str, name: str, value: object) -> str:
    """The answer cell with the assignment of `name` replaced by `name = value`."""
    node = _assignments(source)[name]
    lines = source.splitlines()
    indent = lines[node.lineno - 1][:node.col_offset]
    return "\n".join(lines[:node.lineno - 1] + [f"{indent}{name} = {value!r}"] + lines[node.end_lineno:])


def _checked_notebook(sliced: nbformat.NotebookNode, prediction: Prediction) -> nbformat.NotebookNode:
    """The graded slice up to the prediction's answer cell, then only its tests and the later answer cells (a later
    prediction's test may read this one): `run_batch` grades each variant of the cell by exactly those tests."""
    ids = [nbgrader_id(c) for c in sliced.cells]
    at = ids.index(prediction.cell)
    nb = nbformat.reads(nbformat.writes(sliced), as_version=4)
    nb.cells = nb.cells[:at + 1] + [c for c in nb.cells[at + 1:] if nbgrader_id(c) in prediction.tests
                                    or (c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))]
    return nb


def copyable(course: Course, lab: str, pool: GradingPool) -> list[str]:
    """Problems of `lab`: each prediction value a student could copy from the run's output or the release's text
    and earn the prediction's points with (empty when none)."""
    release_path = course.release_notebook(lab)
    if not release_path.is_file():
        raise CourseError(f"{lab} has no release: run `course release {lab}` first.")
    source = nbformat.read(course.source_notebook(lab), as_version=4)
    release_text = release_path.read_text()
    release = nbformat.reads(release_text, as_version=4)
    bundle = bundle_from(lab, source, release_text)
    limits = default_limits(course)
    limits = type(limits)(cell_s=min(limits.cell_s, CELL_S), submission_s=limits.submission_s,
                          memory_mb=limits.memory_mb, processes=limits.processes)
    sliced = graded_slice(source)
    cells = {nbgrader_id(c): c.source for c in source.cells if nbgrader_id(c)}
    batches, tried = {}, {}
    for prediction in predictions(source, bundle.tests):
        tried[prediction.name] = candidates(source, release, prediction)
        notebook = nbformat.writes(_checked_notebook(sliced, prediction))
        job = GradeJob(lab=lab, student="copycheck", submission=notebook.encode(), release=notebook,
                       tests=bundle.tests, aliases=bundle.aliases, limits=limits, env=kernel_env(),
                       denied=[str(course.root)], threads=pool.threads, isolated=pool.isolated)
        original = cells[prediction.cell]
        variants = [original] + [with_value(original, prediction.name, c.value) for c in tried[prediction.name]]
        batches[prediction.name] = MutantBatch(job, prediction.cell, variants)
    decided: dict[str, list] = {}
    pool.map(run_batch, batches, decided.__setitem__, lambda key, err: [None] * len(batches[key].sources))
    problems = []
    for name, verdicts in decided.items():
        if verdicts[0] is not False:
            problems.append(f"{lab}: {name} could not be checked: the solution's own value "
                            f"{'fails its tests' if verdicts[0] else 'was not graded (the kernel was lost)'}")
            continue
        problems += [f"{lab}: {name} accepts {c.value!r}, {c.origin}"
                     for c, failed in zip(tried[name], verdicts[1:]) if failed is False]
        undecided = sum(failed is None for failed in verdicts[1:])
        if undecided:
            problems.append(f"{lab}: {name}: {undecided} candidates were not graded (the kernel was lost)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.grading.copycheck",
                                     description="Find prediction values a student could copy from a lab.")
    parser.add_argument("labs", nargs="+", help="labs to check")
    parser.add_argument("--workers", type=int, default=2, help="kernels at once (default 2)")
    parser.add_argument("--course-dir", type=Path, default=None, help="the course folder (default: found from here)")
    args = parser.parse_args(argv)
    os.environ.setdefault(QUICK_ENV, "1")  # the kernels run the lab's cells up to each prediction, quickly
    try:
        course = Course(find_course_root(args.course_dir))
        labs = course.check_labs(args.labs)
        with GradingPool(args.workers) as pool:
            problems = [p for lab in labs for p in copyable(course, lab, pool)]
    except CourseError as err:
        print(f"copycheck: {err}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem)
    print(f"copycheck: {len(problems)} problem(s) in {', '.join(labs)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
