"""Does the copy check find the prediction values a student could copy from a lab, and only those?"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat

from course_utils.grading.copycheck import candidates, copyable, main, predictions, with_value
from course_utils.grading.course import Course
from course_utils.grading.pool import GradingPool
from notebook_cells import cell

REPO = Path(__file__).resolve().parents[1]
LAB = "copied"


def _printed(source: str, text: str) -> nbformat.NotebookNode:
    made = cell("code", source)
    made.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return made


def copy_lab() -> nbformat.NotebookNode:
    """A lab with a share that its run prints after asking for it (copyable) and a side it never prints (safe)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        cell("markdown", "# Copying\n\nA 3x3 kernel at stride 1 on a side of 12 gives 10; padding adds 2 per unit."),
        cell("code", "import math"),
        cell("code", "### BEGIN SOLUTION\nprediction_share = math.erf(1 / math.sqrt(2))\n### END SOLUTION",
             grade_id="predict_share", solution=True),
        cell("code", '"""Is the share a number in [0, 1]? (checked when the notebook is graded)"""\n'
                     "assert 0 <= prediction_share <= 1\n### BEGIN HIDDEN TESTS\n"
                     "assert abs(prediction_share - 0.682689) < 1e-3\n### END HIDDEN TESTS",
             grade_id="test_share", grade=True, locked=True, points=1),
        cell("code", "### BEGIN SOLUTION\nprediction_side = 9  # a 4x4 kernel on a side of 12\n### END SOLUTION",
             grade_id="predict_side", solution=True),
        cell("code", '"""Is the side an int?"""\nassert isinstance(prediction_side, int)\n'
                     "### BEGIN HIDDEN TESTS\nassert prediction_side == 9\n### END HIDDEN TESTS",
             grade_id="test_side", grade=True, locked=True, points=1),
        _printed("print(f'you predicted {prediction_side} and {prediction_share}')\n"
                 "print(f'measured side 11 (you predicted {prediction_side})')",
                 "you predicted 9 and 0.6827\nmeasured side 11 (you predicted 9)\n"),  # a result, and echoes
        _printed("print('within one sigma:', round(math.erf(1 / math.sqrt(2)), 4), 'side', 10.0)",
                 "within one sigma: 0.6827 side 10.0 torch.Size([1, 3, 10, 10])\n"),
    ]
    return nb


def make_lab(root: Path) -> Course:
    (root / "source" / LAB).mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    nbformat.write(copy_lab(), root / "source" / LAB / f"{LAB}.ipynb")
    course = Course(root)
    course.release(LAB)
    return course


def _release(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version as nbgrader makes it: solutions and hidden tests taken out."""
    shipped = nbformat.reads(nbformat.writes(nb), as_version=4)
    for c in shipped.cells:
        c.source = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "raise NotImplementedError()", c.source, flags=re.S)
        c.source = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", c.source, flags=re.S)
    return shipped


def _tests(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")}


def test_predictions_are_found_with_their_kind_and_tests():
    found = {p.name: p for p in predictions(copy_lab(), _tests(copy_lab()))}
    assert set(found) == {"prediction_share", "prediction_side"}
    assert (found["prediction_share"].kind, found["prediction_share"].tests) == ("float", ("test_share",))
    assert (found["prediction_side"].kind, found["prediction_side"].tests) == ("int", ("test_side",))


def test_candidates_skip_echoes_and_keep_the_kind_of_the_answer():
    nb = copy_lab()
    found = {p.name: p for p in predictions(nb, _tests(nb))}
    share = {repr(c.value): c.origin for c in candidates(nb, _release(nb), found["prediction_share"])}
    assert share["0.6827"] == "printed by cell 8 after it"  # not cell 7's line, which echoes the student's values
    assert share["11"] == "printed by cell 7 after it"  # the part of a line before its echo
    assert share["12"] == "stated in release cell 1"
    side = {repr(c.value) for c in candidates(nb, _release(nb), found["prediction_side"])}
    assert {"10", "10.0", "11", "12", "3"} <= side and "9" not in side  # 10.0 is tried as an int too


def test_shapes_and_words_are_candidates_of_their_kind():
    nb = copy_lab()
    nb.cells[4].source = "### BEGIN SOLUTION\nprediction_shape = (1, 3, 9, 9)\nprediction_word = 'b'\n" \
                         "### END SOLUTION"
    nb.cells[5].source = "assert prediction_shape == (1, 3, 9, 9) and prediction_word == 'b'"
    found = {p.name: p for p in predictions(nb, _tests(nb))}
    assert found["prediction_shape"].kind == "shape" and found["prediction_word"].kind == "word"
    assert (1, 3, 10, 10) in [c.value for c in candidates(nb, _release(nb), found["prediction_shape"])]
    words = {c.value for c in candidates(nb, _release(nb), found["prediction_word"])}
    assert {"within", "sigma", "side"} <= words and "Copying" not in words  # a choice's question names options


def test_a_candidate_replaces_only_its_assignment():
    source = "B = 32\n### BEGIN SOLUTION\nprediction_a = (B - 1) / B\nprediction_b = 2\n### END SOLUTION"
    assert with_value(source, "prediction_a", 0.5) == \
        "B = 32\n### BEGIN SOLUTION\nprediction_a = 0.5\nprediction_b = 2\n### END SOLUTION"


def test_a_printed_value_that_passes_is_reported_and_a_safe_prediction_is_not(tmp_path):
    course = make_lab(tmp_path / "course")
    with GradingPool(1) as pool:
        problems = copyable(course, LAB, pool)
    assert problems == [f"{LAB}: prediction_share accepts 0.6827, printed by cell 8 after it"]
    assert main(["--course-dir", str(course.root), LAB]) == 1


def test_a_lab_without_copyable_predictions_passes(tmp_path):
    course = make_lab(tmp_path / "course")
    nb = nbformat.read(course.source_notebook(LAB), as_version=4)
    nb.cells[-1].outputs[0].text = "within one sigma: 0.68 side 10.0\n"  # too coarse for the 1e-3 tolerance
    nbformat.write(nb, course.source_notebook(LAB))
    assert main(["--course-dir", str(course.root), LAB, "--workers", "1"]) == 0
