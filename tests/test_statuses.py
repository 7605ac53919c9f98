"""Every submission ends with a status, never a silent 0: each of the usual mistakes and accidents, replayed in one
class, with the gradebook, the feedback pages and the stored outcomes checked afterwards."""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime

import nbformat
import pytest
from nbgrader.api import Gradebook, MissingEntry

from course_utils.grading import jobs, pool
from course_utils.grading.classroom import grade_lab, lab_lock, set_extension
from course_utils.grading.cli import main
from course_utils.grading.course import CourseError
from course_utils.grading.export import write_grades
from course_utils.grading.results import FailureKind, Status
from grading_fixtures import LAB, make_course, submissions, submit
from processes import adopt_orphans

LIMITS = jobs.Limits(cell_s=20, submission_s=120, memory_mb=2048)
LOST, BROKEN = "worker_lost", "grader_error"  # the grading machine fails these two in the first run


def _another_lab() -> bytes:
    """A notebook of another lab: graded cells, none of them this lab's."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("def conv_output_size(n):\n    return n")
    cell.metadata["nbgrader"] = {"grade_id": "conv_output_size", "solution": True, "grade": False, "locked": False,
                                 "schema_version": 3, "task": False}
    nb.cells = [nbformat.v4.new_markdown_cell("# Conv shapes"), cell]
    return nbformat.writes(nb).encode()


def _lose_the_worker(job):
    if job.student == LOST:
        raise OSError("the worker's connection was reset")
    return jobs.run_job(job)


def _break_the_grader(real):
    def start_kernel(job, attempts=2):
        if job.student == BROKEN:
            raise OSError(28, "No space left on device: '/sys/fs/cgroup/course/job/memory.max'")
        return real(job, attempts)
    return start_kernel


def _in_gradebook(course, student: str) -> float | None:
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        try:
            return gb.find_submission(LAB, student).score
        except MissingEntry:
            return None


def _page(course, student: str) -> str:
    return course.feedback_page(LAB, student).read_text()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A class with every kind of submission, graded once while the grading machine fails two of them."""
    adopt_orphans()
    course = make_course(tmp_path_factory.mktemp("statuses") / "course")
    good = submissions(course)["good"]
    submit(course, {"good": good, "late_stamp": good, LOST: good, BROKEN: good, "other_lab": _another_lab()})
    (course.root / "submitted" / "late_stamp" / LAB / "timestamp.txt").write_text("not a date")
    renamed = course.root / "submitted" / "renamed" / LAB
    renamed.mkdir(parents=True)
    (renamed / "Tiny (1).ipynb").write_bytes(good)
    (course.root / "submitted" / "empty" / LAB).mkdir(parents=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pool, "run_job", _lose_the_worker)
        patch.setattr(jobs, "start_kernel", _break_the_grader(jobs.start_kernel))
        first = {o.student: o for o in grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)}
    return course, first


def test_a_renamed_notebook_is_missing_and_says_what_was_found(graded):
    course, first = graded
    outcome = first["renamed"]
    assert outcome.status is Status.MISSING
    assert outcome.failure.detail == "expected tiny.ipynb, found Tiny (1).ipynb"
    assert "expected tiny.ipynb, found Tiny (1).ipynb" in _page(course, "renamed")
    assert _in_gradebook(course, "renamed") is None


def test_an_empty_lab_folder_is_missing(graded):
    course, first = graded
    assert first["empty"].status is Status.MISSING and "empty" in first["empty"].failure.detail
    assert _in_gradebook(course, "empty") is None and not course.autograded_notebook(LAB, "empty").exists()


def test_a_notebook_of_another_lab_is_the_wrong_lab(graded):
    course, first = graded
    outcome = first["other_lab"]
    assert outcome.status is Status.WRONG_LAB and "conv_output_size" in outcome.failure.detail
    assert "wrong lab" in _page(course, "other_lab")
    assert _in_gradebook(course, "other_lab") is None


def test_a_malformed_timestamp_fails_only_its_submission(graded):
    course, first = graded
    assert first["late_stamp"].status is Status.MALFORMED_FILE and "not a date" in first["late_stamp"].failure.detail
    assert first["good"].status is Status.GRADED and first["good"].auto_score == 3
    assert _in_gradebook(course, "good") == 3


def test_the_machines_failures_are_not_graded_and_say_so(graded):
    course, first = graded
    assert first[LOST].failure.kind is FailureKind.WORKER_LOST
    assert first[BROKEN].failure.kind is FailureKind.GRADER_ERROR and "No space left" in first[BROKEN].failure.detail
    for student in (LOST, BROKEN):
        assert first[student].status is Status.MACHINE_FAILURE
        assert _in_gradebook(course, student) is None
        assert "problem of the grading machine" in _page(course, student)
    summary = (course.root / "grading" / LAB / "summary.md").read_text()
    assert "1 of 7 students graded, 6 not graded" in summary
    assert f"| {Status.MACHINE_FAILURE.value} | 2 |" in summary and f"| {Status.MISSING.value} | 2 |" in summary


def test_the_export_never_writes_zero_for_a_submission_not_graded(graded):
    course, first = graded
    with open(write_grades(course)) as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert rows["good"]["status"] == Status.GRADED.value and float(rows["good"]["score"]) == 3
    for student in ("renamed", "empty", "other_lab", "late_stamp", LOST, BROKEN):
        assert rows[student]["status"] == first[student].status.value and rows[student]["score"] == "", rows[student]


def test_the_next_run_grades_the_machines_failures_again_and_reuses_the_rest(graded):
    course, first = graded
    again = {o.student: o for o in grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)}
    assert {s for s, o in again.items() if not o.reused} == {LOST, BROKEN}
    for student in (LOST, BROKEN):
        assert again[student].status is Status.GRADED and _in_gradebook(course, student) == 3
        assert "problem of the grading machine" not in _page(course, student)
        state = json.loads((course.root / "grading" / LAB / "state" / f"{student}.json").read_text())
        assert state["outcome"]["failure"] is None
    assert again["renamed"].status is Status.MISSING and again["renamed"].reused


def test_one_student_is_regraded_alone(graded):
    course, _ = graded
    state = course.root / "grading" / LAB / "state"
    before = {p.name: p.read_bytes() for p in state.glob("*.json")}
    path = course.root / "submitted" / "good" / LAB / f"{LAB}.ipynb"
    wrong = submissions(course)["wrong"]
    path.write_bytes(wrong)
    (outcome,) = grade_lab(course, LAB, ["good"], workers=1, limits=LIMITS, progress=False)
    assert outcome.student == "good" and not outcome.reused and outcome.auto_score == 1
    assert _in_gradebook(course, "good") == 1
    after = {p.name: p.read_bytes() for p in state.glob("*.json")}
    assert {n for n in after if after[n] != before.get(n)} == {"good.json"}
    with pytest.raises(CourseError, match="No submission of tiny by nobody"):
        grade_lab(course, LAB, ["nobody"], workers=1, limits=LIMITS, progress=False)


def test_a_second_run_of_the_same_lab_is_refused_naming_the_first(graded):
    course, _ = graded
    with lab_lock(course, LAB):
        with pytest.raises(CourseError, match=f"being graded by another `course grade` \\(process {os.getpid()}\\)"):
            grade_lab(course, LAB, workers=1, limits=LIMITS, progress=False)


def test_an_extension_moves_the_due_date_of_one_student_without_regrading(tmp_path):
    course = make_course(tmp_path / "course", 'c.LateSubmissionPlugin.penalty_method = "zero"')
    good = submissions(course)["good"]
    submit(course, {"ann": good, "bob": good})
    for student in ("ann", "bob"):
        (course.root / "submitted" / student / LAB / "timestamp.txt").write_text("2026-01-03 10:00:00.000000 UTC")
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        gb.update_or_create_assignment(LAB, duedate=datetime(2026, 1, 2))
    set_extension(course, LAB, "ann", datetime(2026, 1, 4))  # before ann was graded: kept until she is
    grade_lab(course, LAB, workers=1, limits=LIMITS, progress=False)
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission(LAB, "ann").late_submission_penalty == 0
        assert gb.find_submission(LAB, "bob").late_submission_penalty == 3
    assert "after the due date" not in _page(course, "ann")
    assert "Submitted 34.0 hours after the due date: a late penalty of 3 points" in _page(course, "bob")
    set_extension(course, LAB, "bob", datetime(2026, 1, 3, 12))
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission(LAB, "bob").late_submission_penalty == 0
    assert "after the due date" not in _page(course, "bob")
    set_extension(course, LAB, "bob", None)
    assert "late penalty of 3 points" in _page(course, "bob")


def test_the_courses_configured_folder_names_are_honoured(tmp_path):
    course = make_course(tmp_path / "course", 'c.CourseDirectory.submitted_directory = "turned_in"\n'
                                              'c.CourseDirectory.autograded_directory = "marked"\n'
                                              'c.CourseDirectory.feedback_directory = "returned"')
    folder = course.root / "turned_in" / "ann" / LAB
    folder.mkdir(parents=True)
    (folder / f"{LAB}.ipynb").write_bytes(submissions(course)["good"])
    (outcome,) = grade_lab(course, LAB, workers=1, limits=LIMITS, progress=False)
    assert outcome.status is Status.GRADED and outcome.auto_score == 3
    assert (course.root / "marked" / "ann" / LAB / f"{LAB}.ipynb").is_file()
    assert "Does add add?" in (course.root / "returned" / "ann" / LAB / f"{LAB}.html").read_text()
    assert not (course.root / "submitted").exists() and not (course.root / "feedback").exists()


def test_a_run_that_the_machine_failed_exits_non_zero(graded, capsys):
    """`course grade` never ends with status 0 while a submission waits to be graded again."""
    course, _ = graded
    args = ["--course-dir", str(course.root), "grade", LAB, "--workers", "1", "--student", LOST]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pool, "run_job", _lose_the_worker)
        assert main(args) == 1
    assert "1 submission(s) not graded because of the grading machine" in capsys.readouterr().err
    assert main(args) == 0
    assert "not graded because of the grading machine" not in capsys.readouterr().err
