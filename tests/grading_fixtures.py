"""A tiny two-exercise lab and the submissions (honest, wrong, hostile, broken) that the grading tests grade."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat

from course_utils.pipeline import Course
from notebook_cells import cell

LAB = "tiny"
REPO = Path(__file__).resolve().parents[1]
HIDDEN_MARKER = "hidden-check-7d1f"  # appears only in a hidden test, so a leak of the source is visible


def source_notebook() -> nbformat.NotebookNode:
    """The instructor's version: two answers, two tests with hidden parts."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        cell("markdown", "# A tiny lab"),
        cell("code", "import numpy as np\nimport course_utils as cu"),
        cell("code", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
              grade_id="add", solution=True),
        cell("code", '"""Does add add?"""\ngot = add(1, 2)\nassert np.allclose(got, 3), "add(1, 2) should be 3"\n'
                      f"### BEGIN HIDDEN TESTS\n# {HIDDEN_MARKER}\n"
                      'cu.checks.check_close(add(np.ones(3), np.ones(3)), 2 * np.ones(3), "add(ones, ones)")\n'
                      "### END HIDDEN TESTS", grade_id="test_add", grade=True, locked=True, points=2),
        cell("code", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
              grade_id="double", solution=True),
        cell("code", '"""Does double double?"""\nassert double(2) == 4, "double(2) should be 4"\n'
                      "### BEGIN HIDDEN TESTS\nassert double(-3) == -6\n### END HIDDEN TESTS",
              grade_id="test_double", grade=True, locked=True, points=1),
    ]
    return nb


def make_course(root: Path, config_extra: str = "") -> Course:
    """A course folder holding the tiny lab, released; `config_extra` is appended to nbgrader_config.py."""
    (root / "source" / LAB).mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    if config_extra:
        with open(root / "nbgrader_config.py", "a") as f:
            f.write("\n" + config_extra + "\n")
    nbformat.write(source_notebook(), root / "source" / LAB / f"{LAB}.ipynb")
    course = Course(root)
    course.release(LAB)
    return course


def _answers(nb: nbformat.NotebookNode, add: str, double: str) -> nbformat.NotebookNode:
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "add":
            cell.source = f"def add(a, b):\n    return {add}"
        elif gid == "double":
            cell.source = f"def double(x):\n    return {double}"
    return nb


def _index(nb: nbformat.NotebookNode, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _after(nb: nbformat.NotebookNode, grade_id: str, source: str) -> nbformat.NotebookNode:
    nb.cells.insert(_index(nb, grade_id) + 1, nbformat.v4.new_code_cell(source))
    return nb


def submissions(course: Course) -> dict[str, bytes]:
    """Every kind of submission the grader must survive, as file contents, keyed by student."""
    release = lambda: nbformat.read(course.release_notebook(LAB), as_version=4)
    good = lambda: _answers(release(), "a + b", "2 * x")
    wrong = lambda: _answers(release(), "a - b", "x + 2")  # both wrong (x + 2 passes only the visible test)
    wrong_add = lambda: _answers(release(), "a - b", "2 * x")
    subs = {
        "good": good(),
        "wrong": wrong_add(),
        "untouched": release(),
        # a cell that never ends: stopped after the per-cell limit; the rest is graded
        "endless_cell": _after(good(), "add", "while True:\n    pass"),
        # a cell that ignores interrupts: only the per-submission limit ends it
        "endless_kernel": _after(good(), "add", "import time\nwhile True:\n    try:\n        time.sleep(0.2)\n"
                                                "    except KeyboardInterrupt:\n        pass"),
        "memory_hog": _after(good(), "add", "hog = [bytearray(2**28) for _ in range(400)]"),
        "kernel_dies": _after(good(), "add", "import os\nos._exit(1)"),
        "huge_output": _after(good(), "add", "for _ in range(2000):\n    print('x' * 50_000)"),
        "reads_solutions": _after(good(), "add", (
            "import glob, os\nfound = []\n"
            f"for path in [{str(course.source_notebook(LAB))!r}, '../../../gradebook.db', "
            f"{str(course.root / 'gradebook.db')!r}, {str(course.root / 'nbgrader_config.py')!r}]:\n"
            "    try:\n        found.append(open(path, 'rb').read()[:5000])\n"
            "    except Exception as err:\n        print('blocked:', type(err).__name__)\n"
            "print(found)")),
        "rebinds_checks": _after(wrong_add(), "add", (
            "import numpy, torch, builtins\nimport course_utils.checks\n"
            "numpy.allclose = lambda *a, **k: True\nnp = numpy\ntorch.allclose = lambda *a, **k: True\n"
            "cu.checks.check_close = lambda *a, **k: None\ncourse_utils.checks.check_close = lambda *a, **k: None\n"
            "get_ipython().input_transformer_manager.cleanup_transforms.append(\n"
            "    lambda lines: ['pass\\n'] if any('assert' in line for line in lines) else lines)")),
        "rebinds_during_test": _answers(release(), (
            "(setattr(__import__('numpy'), 'allclose', lambda *a, **k: True), "
            "setattr(__import__('course_utils').checks, 'check_close', lambda *a, **k: None), a - b)[-1]"),
            "2 * x"),
    }
    tampered = wrong()  # test_add deleted, test_double emptied and moved to the top: the real tests still run
    del tampered.cells[_index(tampered, "test_add")]
    moved = tampered.cells.pop(_index(tampered, "test_double"))
    moved.source = "pass"
    tampered.cells.insert(0, moved)
    subs["tampered_tests"] = tampered
    reordered = good()
    reordered.cells.reverse()  # tests before answers: graded in the release's order
    subs["reordered"] = reordered
    files = {name: nbformat.writes(nb).encode() for name, nb in subs.items()}
    files["not_json"] = b'{"cells": [ this is not json'
    files["not_a_notebook"] = json.dumps({"hello": "world"}).encode()
    return files


def submit(course: Course, files: dict[str, bytes]) -> None:
    for student, content in files.items():
        folder = course.root / "submitted" / student / LAB
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{LAB}.ipynb").write_bytes(content)
