"""Does grades.csv tell graded from not graded, carry per-cell points and penalties, and resist formula injection?"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from course_utils.grading.course import Course
from course_utils.grading.export import write_grades
from course_utils.grading.results import Failure, FailureKind, SubmissionOutcome, TestOutcome

LAB = "tiny"
EVIL_ID = "=HYPERLINK(\"http://x\",\"ada\")"


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """The tiny course, released once for the module (nbgrader takes seconds to release)."""
    from conftest import REPO, TINY_MISTAKES, tiny_lab_notebook
    import nbformat
    import shutil

    root = tmp_path_factory.mktemp("export") / "course"
    (root / "source" / LAB).mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    nbformat.write(tiny_lab_notebook(), root / "source" / LAB / f"{LAB}.ipynb")
    (root / "source" / LAB / "mistakes.py").write_text(TINY_MISTAKES)
    Course(root).release(LAB)
    return root


@pytest.fixture
def course(released: Path, tmp_path: Path) -> Course:
    import shutil

    root = tmp_path / "course"
    shutil.copytree(released, root)
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text() + f"\nc.CourseDirectory.db_url = 'sqlite:///{root / 'gradebook.db'}'\n")
    return Course(root)


def store(course: Course, outcome: SubmissionOutcome) -> None:
    path = course.root / "grading" / LAB / "state" / f"{outcome.student}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fingerprint": "x", "outcome": outcome.to_json()}))


def gradebook_submission(course: Course, student: str, scores: dict[str, float], **fields) -> None:
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        gb.update_or_create_student(student, **fields)
        submission = gb.add_submission(LAB, student)
        submission.timestamp = datetime(2026, 3, 1, 12)
        for grade in submission.notebooks[0].grades:
            if grade.name in scores:
                grade.auto_score = scores[grade.name]
                grade.needs_manual_grade = False
        gb.db.commit()


def rows(course: Course) -> dict[str, dict[str, str]]:
    with open(write_grades(course, course.root / "grades.csv"), newline="") as f:
        return {r["student_id"]: r for r in csv.DictReader(f)}


def graded(student: str, visible: float, hidden: float, isolated: bool = True) -> SubmissionOutcome:
    return SubmissionOutcome(LAB, student, [TestOutcome("test_variance_visible", 1, visible),
                                            TestOutcome("test_variance_hidden", 2, hidden),
                                            TestOutcome("why_n_minus_one", 1, None, autograded=False)],
                             isolated=isolated)


def test_a_graded_submission_has_its_points_per_cell_and_a_written_answer_waits_for_a_person(course):
    store(course, graded("ada", 1, 2))
    gradebook_submission(course, "ada", {"test_variance_visible": 1, "test_variance_hidden": 2})
    row = rows(course)["ada"]
    assert row["status"] == "graded" and row["sandboxed"] == "yes"
    assert (row["raw_score"], row["score"], row["max_score"]) == ("3", "3", "4")
    assert row[f"{LAB}:test_variance_visible"] == "1" and row[f"{LAB}:test_variance_hidden"] == "2"
    assert row[f"{LAB}:why_n_minus_one"] == ""
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        grade = gb.find_grade("why_n_minus_one", LAB, LAB, "ada")
        grade.manual_score = 0.5
        gb.db.commit()
    row = rows(course)["ada"]
    assert row[f"{LAB}:why_n_minus_one"] == "0.5" and row["score"] == "3.5"


def test_the_late_penalty_is_its_own_column_and_comes_off_the_score(course):
    store(course, graded("ada", 1, 2))
    gradebook_submission(course, "ada", {"test_variance_visible": 1, "test_variance_hidden": 2})
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        gb.find_submission_notebook(LAB, LAB, "ada").late_submission_penalty = 2.0
        gb.db.commit()
    row = rows(course)["ada"]
    assert (row["raw_score"], row["late_submission_penalty"], row["score"]) == ("3", "2", "1")


@pytest.mark.parametrize("kind, status", [
    (FailureKind.MISSING, "missing"), (FailureKind.NOT_A_NOTEBOOK, "not a notebook"),
    (FailureKind.WRONG_LAB, "wrong lab"), (FailureKind.UNSAFE_FILE, "unsafe file"),
    (FailureKind.MALFORMED_FILE, "malformed file"), (FailureKind.SANDBOX, "not graded (grading machine)")])
def test_a_submission_that_was_not_graded_has_its_status_and_no_score_not_zero(course, kind, status):
    store(course, SubmissionOutcome(LAB, "bob", failure=Failure(kind, "why")))
    gradebook_submission(course, "bob", {"test_variance_visible": 0, "test_variance_hidden": 0})
    row = rows(course)["bob"]
    assert row["status"] == status
    assert row["raw_score"] == row["score"] == row[f"{LAB}:test_variance_visible"] == ""
    assert row["max_score"] == "4"


def test_a_student_without_a_submission_is_not_submitted_and_one_without_a_gradebook_entry_still_has_a_row(course):
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        gb.update_or_create_student("carol")
    store(course, SubmissionOutcome(LAB, "dan", failure=Failure(FailureKind.MISSING, "expected tiny.ipynb")))
    found = rows(course)
    assert found["carol"]["status"] == "not submitted" and found["carol"]["score"] == ""
    assert found["dan"]["status"] == "missing" and found["dan"]["score"] == ""


def test_an_unsandboxed_grade_is_marked(course):
    store(course, graded("ada", 1, 0, isolated=False))
    gradebook_submission(course, "ada", {"test_variance_visible": 1, "test_variance_hidden": 0})
    assert rows(course)["ada"]["sandboxed"] == "no"


def test_no_cell_starts_a_formula(course):
    store(course, graded(EVIL_ID, 1, 2))
    gradebook_submission(course, EVIL_ID, {"test_variance_visible": 1, "test_variance_hidden": 2},
                         first_name="@SUM(A1:A9)", last_name="-1+1")
    with open(write_grades(course, course.root / "out.csv"), newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert "'" + EVIL_ID in cells and "'@SUM(A1:A9)" in cells and "'-1+1" in cells
    assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for c in cells)
    assert not any(c.startswith("-") and not c.lstrip("-").replace(".", "").isdigit() for c in cells)


def test_an_unreadable_stored_outcome_counts_as_none(course):
    path = course.root / "grading" / LAB / "state" / "eve.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    gradebook_submission(course, "eve", {"test_variance_visible": 1, "test_variance_hidden": 0})
    row = rows(course)["eve"]
    assert row["status"] == "graded" and row["raw_score"] == "1" and row["sandboxed"] == ""
