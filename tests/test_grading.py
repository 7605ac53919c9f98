"""`course grade` end to end on a tiny lab: every hostile submission fails alone, honest ones score right."""

from __future__ import annotations

import json
from datetime import datetime

import nbformat
import pytest
from nbgrader.api import Gradebook

from course_utils.grading import grade_lab
from course_utils.grading_job import Limits
from grading_fixtures import HIDDEN_MARKER, LAB, make_course, submissions, submit

LIMITS = Limits(cell_s=20, submission_s=60, memory_mb=6144)
EXPECTED_POINTS = {  # students who must be graded, with their autograded points out of 3
    "good": 3, "wrong": 1, "untouched": 0, "endless_cell": 3, "memory_hog": 3, "huge_output": 3,
    "reads_solutions": 3, "rebinds_checks": 1, "rebinds_during_test": 1, "tampered_tests": 0, "reordered": 3,
}
EXPECTED_FAILURE = {  # students who cannot be graded, with the kind of reason given
    "endless_kernel": "time limit", "kernel_dies": "kernel died", "not_json": "not a valid notebook",
    "not_a_notebook": "not a valid notebook",
}
EXPECTED_NOTE = {
    "endless_cell": "cell time limit", "memory_hog": "memory limit", "huge_output": "output truncated",
    "reads_solutions": None, "rebinds_during_test": "test tampering",
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("course"))
    files = submissions(course)
    submit(course, files)
    outcomes = grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)
    return course, {o.student: o for o in outcomes}


def test_every_submission_gets_a_result(graded):
    course, outcomes = graded
    assert set(outcomes) == set(EXPECTED_POINTS) | set(EXPECTED_FAILURE)


@pytest.mark.parametrize("student", sorted(EXPECTED_POINTS))
def test_graded_submissions_earn_exactly_their_points(graded, student):
    course, outcomes = graded
    outcome = outcomes[student]
    assert outcome.failure is None, outcome.failure
    assert outcome.result.auto_score == EXPECTED_POINTS[student], (outcome.result.tests, outcome.notes)
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission_notebook(LAB, LAB, student).score == EXPECTED_POINTS[student]
    assert course.autograded_notebook(LAB, student).is_file()


@pytest.mark.parametrize("student", sorted(EXPECTED_FAILURE))
def test_broken_submissions_fail_alone_with_a_reason(graded, student):
    course, outcomes = graded
    outcome = outcomes[student]
    assert outcome.failure and outcome.failure.startswith(EXPECTED_FAILURE[student]), outcome.failure
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission_notebook(LAB, LAB, student).score == 0
    feedback = (course.root / "feedback" / student / LAB / f"{LAB}.html").read_text()
    assert EXPECTED_FAILURE[student] in feedback


@pytest.mark.parametrize("student", sorted(k for k, v in EXPECTED_NOTE.items() if v))
def test_limits_hit_by_one_cell_are_noted_in_summary_and_feedback(graded, student):
    course, outcomes = graded
    assert any(n.startswith(EXPECTED_NOTE[student]) for n in outcomes[student].notes), outcomes[student].notes
    feedback = (course.root / "feedback" / student / LAB / f"{LAB}.html").read_text()
    assert EXPECTED_NOTE[student] in feedback
    assert EXPECTED_NOTE[student] in (course.root / "grading" / LAB / "summary.md").read_text()


def test_huge_output_is_cut_short(graded):
    course, _ = graded
    assert course.autograded_notebook(LAB, "huge_output").stat().st_size < 2_000_000


def test_sources_hidden_tests_and_gradebook_are_not_readable_from_the_kernel(graded):
    course, _ = graded
    nb = nbformat.read(course.autograded_notebook(LAB, "reads_solutions"), as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert printed.count("blocked: SandboxError") == 4, printed
    assert HIDDEN_MARKER not in printed and "SQLite" not in printed and "batch-norm-labs" not in printed


def test_summary_counts_failures_by_reason_and_tests_by_share(graded):
    course, outcomes = graded
    summary = (course.root / "grading" / LAB / "summary.md").read_text()
    assert f"{len(EXPECTED_POINTS)} of {len(outcomes)} students graded" in summary
    assert "| not a valid notebook | 2 |" in summary
    failed_add = sum(1 for o in outcomes.values() if o.failure or "test_add" in o.result.lost())
    assert f"| test_add | {failed_add / len(outcomes):.0%} |" in summary
    assert (course.root / "grading" / LAB / "failed_tests.png").stat().st_size > 1000


def test_rerun_grades_only_what_changed_and_keeps_earlier_grades(graded):
    course, before = graded
    state = course.root / "grading" / LAB / "state"
    (state / "wrong.json").unlink()  # as if the run had been interrupted before `wrong` was recorded
    good = nbformat.read(course.root / "submitted" / "untouched" / LAB / f"{LAB}.ipynb", as_version=4)
    fixed = nbformat.reads(nbformat.writes(good), as_version=4)
    for cell in fixed.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "double":
            cell.source = "def double(x):\n    return 2 * x"
    nbformat.write(fixed, course.root / "submitted" / "untouched" / LAB / f"{LAB}.ipynb")
    after = {o.student: o for o in grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)}
    regraded = {s for s, o in after.items() if not o.reused}
    assert regraded == {"wrong", "untouched"}
    assert after["untouched"].result.auto_score == 1 and after["wrong"].result.auto_score == 1
    assert after["good"].result.auto_score == 3 and json.loads((state / "good.json").read_text())["failure"] is None
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission_notebook(LAB, LAB, "reordered").score == 3


def test_late_submissions_lose_what_the_late_policy_says_and_a_new_due_date_needs_no_regrading(tmp_path):
    course = make_course(tmp_path, 'c.LateSubmissionPlugin.penalty_method = "zero"')
    good = submissions(course)["good"]
    submit(course, {"on_time": good, "late": good})
    for student, when in [("on_time", "2026-01-01 10:00:00.000000 UTC"), ("late", "2026-01-03 10:00:00.000000 UTC")]:
        (course.root / "submitted" / student / LAB / "timestamp.txt").write_text(when)
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        gb.update_or_create_assignment(LAB, duedate=datetime(2026, 1, 2))
    grade_lab(course, LAB, workers=1, limits=LIMITS, progress=False)
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission(LAB, "on_time").late_submission_penalty == 0
        assert gb.find_submission(LAB, "late").late_submission_penalty == 3  # "zero": late work scores nothing
        gb.update_or_create_assignment(LAB, duedate=datetime(2026, 1, 4))
    again = grade_lab(course, LAB, workers=1, limits=LIMITS, progress=False)
    assert all(o.reused for o in again)
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission(LAB, "late").late_submission_penalty == 0
