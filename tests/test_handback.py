"""Returning feedback after hand grading, on a tiny course: the gradebook's hand grades and comments reach the
student's page beside the autograded tests, the late penalty follows the score they give, hidden tests stay
hidden."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from course_utils.grading.course import Course, CourseError
from course_utils.grading.handback import return_feedback
from course_utils.grading.results import Failure, FailureKind, SubmissionOutcome
from course_utils.grading.results import TestOutcome as Verdict  # not a class of tests

LAB = "tiny"
ANSWER = "Because the mean is estimated from the same data, which costs one degree of freedom."
COMMENT = "Right: and why exactly one? 1/1 anyway."
HIDDEN_CODE = ("import statistics", "statistics.variance(xs)) < 1e-12", "BEGIN HIDDEN")
DUE = datetime(2026, 3, 1, 12, 0)


def graded_by_course(course: Course, student: str, submitted: datetime) -> None:
    """What `course grade` leaves for a student whose hidden test failed: the autograded notebook (hidden tests
    included, as nbgrader keeps them), gradebook rows with the autograded scores, and the stored outcome."""
    nb = nbformat.read(course.source_notebook(LAB), as_version=4)
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "why_n_minus_one")
    answer.source = ANSWER
    path = course.autograded_notebook(LAB, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    auto = {"test_variance_visible": 1.0, "test_variance_hidden": 0.0}
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        gb.update_or_create_assignment(LAB, duedate=DUE)
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(LAB, student)
        submission.timestamp = submitted
        for grade in gb.find_submission_notebook(LAB, LAB, student).grades:
            grade.auto_score = auto.get(grade.name)
            grade.needs_manual_grade = grade.name not in auto
        gb.db.commit()
        assert submission.total_seconds_late == max(0.0, (submitted - DUE).total_seconds())
    outcome = SubmissionOutcome(LAB, student, tests=[
        Verdict("test_variance_visible", 1, 1.0, checks="Is the variance of [1, 3] equal to 2?"),
        Verdict("test_variance_hidden", 2, 0.0, checks="Does variance match statistics.variance on other lists?",
                message="wrong variance for [1, 2, 4]"),
        Verdict("why_n_minus_one", 1, None, autograded=False)])
    state = course.root / "grading" / LAB / "state" / f"{student}.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"fingerprint": "f", "outcome": outcome.to_json()}))


def hand_grade(course: Course, student: str, cell: str, score: float, comment: str | None = None) -> None:
    """What the formgrader's API does when a person gives a score and a comment (nbgrader's apihandlers)."""
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        grade = gb.find_grade(cell, LAB, LAB, student)
        grade.manual_score = score
        grade.needs_manual_grade = False
        if comment is not None:
            gb.find_comment(cell, LAB, LAB, student).manual_comment = comment
        gb.db.commit()


@pytest.fixture
def course(tiny_course: Path) -> Course:
    with open(tiny_course / "nbgrader_config.py", "a") as config:
        config.write('\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    course = Course(tiny_course)
    course.release(LAB)
    return course


def test_hand_grades_and_comments_reach_the_page_beside_the_autograded_tests(course: Course):
    """Before hand grading the answer is pending; after it, the page shows its score and comment, the autograded
    verdicts, a grader's override of a test, and no hidden test code, where generate_feedback puts pages."""
    graded_by_course(course, "ann", DUE - timedelta(hours=1))
    (page,) = return_feedback(course, LAB)
    assert page == course.root / "feedback" / "ann" / LAB / f"{LAB}.html"
    before = page.read_text()
    assert "not graded yet (1 points)" in before and ANSWER in before
    hand_grade(course, "ann", "why_n_minus_one", 1.0, COMMENT)
    hand_grade(course, "ann", "test_variance_hidden", 1.0)  # a person may override an autograded test
    assert return_feedback(course, LAB, ["ann"]) == [page]
    after = page.read_text()
    assert "Is the variance of [1, 3] equal to 2?" in after and "passed: 1 of 1 points" in after
    assert "wrong variance for [1, 2, 4]" in after and "failed: 1 of 2 points" in after
    assert "graded by hand: 1 of 1 points" in after and COMMENT in after
    assert "Total: 3 of 4 points." in after and "after the due date" not in after
    assert not [code for code in HIDDEN_CODE if code in after]
    assert not list(page.parent.glob(".*.tmp"))


def test_the_late_penalty_follows_the_hand_grades(course: Course):
    """Under a policy that takes the whole score, is the penalty recomputed with the hand grade, in the gradebook
    and on the page?"""
    graded_by_course(course, "bob", DUE + timedelta(hours=2))
    hand_grade(course, "bob", "why_n_minus_one", 1.0, COMMENT)
    (page,) = return_feedback(course, LAB, ["bob"])
    text = page.read_text()
    assert "Submitted 2.0 hours after the due date: a late penalty of 2 points applies" in text
    assert "your score after the penalty is 0 of 4 points" in text
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission_notebook(LAB, LAB, "bob").late_submission_penalty == 2.0


def test_a_submission_that_could_not_be_graded_keeps_its_reason(course: Course):
    """Is a student whose submission failed given the failure page again, with the gradebook untouched?"""
    outcome = SubmissionOutcome(LAB, "cy", failure=Failure(FailureKind.MISSING, "expected tiny.ipynb, found Tiny.ipynb"))
    state = course.root / "grading" / LAB / "state" / "cy.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"fingerprint": "f", "outcome": outcome.to_json()}))
    (page,) = return_feedback(course, LAB)
    assert "expected tiny.ipynb, found Tiny.ipynb" in page.read_text()


def test_a_student_never_graded_or_a_lost_notebook_is_a_clear_error_and_writes_nothing(course: Course):
    """Does asking for a student without a recorded grade, or one whose autograded notebook is gone, fail
    before any page is written?"""
    graded_by_course(course, "ann", DUE)
    graded_by_course(course, "bob", DUE)
    with pytest.raises(CourseError, match="No grade of tiny recorded for zed: run `course grade tiny` first"):
        return_feedback(course, LAB, ["ann", "zed"])
    course.autograded_notebook(LAB, "bob").unlink()
    with pytest.raises(CourseError, match="bob's autograded notebook .* cannot be read"):
        return_feedback(course, LAB)
    assert not (course.root / "feedback").exists()
