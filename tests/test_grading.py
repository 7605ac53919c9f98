"""`course grade` end to end on a tiny lab: every hostile submission earns nothing it should not and fails alone.

All submissions (honest, wrong, broken, and each attack of issues #12 and #13) are graded in one run
with two workers, as a class would be.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from course_utils.grading.classroom import grade_lab
from course_utils.grading.jobs import Limits
from course_utils.grading.results import Status
from grading_fixtures import HIDDEN_MARKER, LAB, LEAK_MARKER, SECRET_ENV, SECRET_VALUE, make_course, submissions, submit
from processes import adopt_orphans, wait_for_none

LIMITS = Limits(cell_s=20, submission_s=120, memory_mb=2048)  # --memory 2048: honest kernels keep every point
POINTS = {  # every submission that is graded, with its autograded points out of 3
    "good": 3, "wrong": 1, "untouched": 0, "written_answer_with_script": 3, "honest_alternative": 3,
    "noisy_but_right": 3, "endless_cell": 3, "endless_kernel": 0, "kernel_dies": 0, "huge_output": 3,
    "floods_memory": 3, "huge_allocation": 3, "fork_bomb": 3, "reads_secrets": 3, "attacks_others": 3,
    "looks_for_leaks": 3, "forges_grades": 1, "leaves_a_daemon": 3, "stops_the_grader": 3, "native_code": 3,
    "crashes_itself": 3, "network": 3, "eq_always_true": 1, "array_subclasses": 1, "reads_the_test": 1,
    "patches_the_referees_tools": 1, "hijacks_the_agent": 0, "redirects_the_grader": 3, "shows_scripts": 3, "tampered_tests": 1,
    "reordered": 3,
}
NOT_GRADED = {"not_json": Status.NOT_A_NOTEBOOK, "not_a_notebook": Status.NOT_A_NOTEBOOK}
NOTES = {  # the note that says what happened, for submissions that hit a limit or lost their kernel
    "endless_cell": "cell time limit", "endless_kernel": "did not stop when interrupted",
    "kernel_dies": "exited with status 1", "huge_output": "output truncated", "floods_memory": "memory limit",
    "stops_the_grader": "did not stop when interrupted", "crashes_itself": "killed by signal 11",
}


def _listener(kind: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen(8)
    sock.setblocking(False)
    return sock


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    adopt_orphans()
    udp, tcp = _listener(socket.SOCK_DGRAM), _listener(socket.SOCK_STREAM)
    course = make_course(tmp_path_factory.mktemp("course"))
    files = submissions(course, udp.getsockname()[1], tcp.getsockname()[1])
    submit(course, files)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SECRET_ENV, SECRET_VALUE)
        outcomes = grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)
    received = []
    try:
        received.append(udp.recv(4096))
    except BlockingIOError:
        pass
    try:
        received.append(tcp.accept())
    except BlockingIOError:
        pass
    udp.close(), tcp.close()
    return course, {o.student: o for o in outcomes}, received


def _messages(outcome) -> dict[str, str]:
    """grade_id -> why the test failed, for the tests a submission lost."""
    return {t.grade_id: t.message for t in outcome.tests if t.autograded and not t.passed}


def _printed(course, student: str) -> str:
    nb = nbformat.read(course.autograded_notebook(LAB, student), as_version=4)
    return "".join(str(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))


def test_every_submission_gets_a_result(graded):
    _, outcomes, _ = graded
    assert set(outcomes) == set(POINTS) | set(NOT_GRADED)


@pytest.mark.parametrize("student", sorted(POINTS))
def test_each_submission_earns_exactly_its_points(graded, student):
    """Honest answers keep every point; an attack earns nothing beyond what the student's answers earn."""
    course, outcomes, _ = graded
    outcome = outcomes[student]
    assert outcome.status is Status.GRADED, outcome.failure
    assert outcome.auto_score == POINTS[student], (_messages(outcome), outcome.notes)
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission_notebook(LAB, LAB, student).score == POINTS[student]
    assert course.autograded_notebook(LAB, student).is_file()


@pytest.mark.parametrize("student", sorted(NOT_GRADED))
def test_broken_submissions_fail_alone_with_a_reason(graded, student):
    course, outcomes, _ = graded
    outcome = outcomes[student]
    assert outcome.status is NOT_GRADED[student], outcome.failure
    feedback = (course.root / "feedback" / student / LAB / f"{LAB}.html").read_text()
    assert NOT_GRADED[student].value in feedback
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert student not in {s.student.id for s in gb.find_assignment(LAB).submissions}  # no grade, not a 0


@pytest.mark.parametrize("student", sorted(NOTES))
def test_what_stopped_a_notebook_is_said_in_its_feedback_and_the_summary(graded, student):
    course, outcomes, _ = graded
    assert any(NOTES[student] in str(n) for n in outcomes[student].notes), outcomes[student].notes
    feedback = (course.root / "feedback" / student / LAB / f"{LAB}.html").read_text()
    assert NOTES[student] in feedback


def test_a_failed_test_says_why(graded):
    _, outcomes, _ = graded
    assert _messages(outcomes["wrong"]) == {"test_add": "add(1, 2) should be 3"}
    assert _messages(outcomes["untouched"])["test_double"] == "your code raised NotImplementedError"
    assert "cannot read" in _messages(outcomes["hijacks_the_agent"])["test_add"]
    assert "not run" in _messages(outcomes["kernel_dies"])["test_add"]
    assert not next(t for t in outcomes["kernel_dies"].tests if t.grade_id == "test_add").ran


def test_nothing_of_the_course_or_the_instructor_is_readable_from_a_kernel(graded):
    course, _, _ = graded
    printed = _printed(course, "reads_secrets")
    assert "FOUND" in printed
    for secret in (HIDDEN_MARKER, SECRET_VALUE, "SQLite format", "BEGIN SOLUTION", "course_id", "Does add add?",
                   "gradebook.db", "source"):
        assert secret not in printed, printed[:3000]
    assert "open via libc: -1" in _printed(course, "native_code")
    assert "compiled extension says 42" in _printed(course, "native_code")  # native code runs, but only inside


def test_students_cannot_reach_each_other(graded):
    course, outcomes, _ = graded
    assert "connection files: 1 grader folders: []" in _printed(course, "attacks_others")  # its own only
    assert LEAK_MARKER not in _printed(course, "looks_for_leaks")
    assert outcomes["good"].auto_score == 3


def test_limits_hold_and_nothing_is_left_behind(graded):
    course, _, received = graded
    assert "refused" in _printed(course, "huge_allocation")
    assert "fork stopped after" in _printed(course, "fork_bomb")
    assert received == [], "a kernel reached a listener on the grading machine's loopback"
    assert wait_for_none() == []  # no zygote, sandbox, kernel or daemon of this run is left
    assert not list(Path("/sys/fs/cgroup").glob(f"*/**/course-grade-{os.getpid()}"))


def test_the_gradebook_and_the_grading_process_are_out_of_reach(graded):
    course, outcomes, _ = graded
    assert "gradebook: FileNotFoundError" in _printed(course, "forges_grades")
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission_notebook(LAB, LAB, "forges_grades").score == 1
        assert gb.find_submission_notebook(LAB, LAB, "good").score == 3


def test_feedback_shows_no_hidden_test_and_no_active_content(graded):
    course, outcomes, _ = graded
    for student in outcomes:
        page = (course.root / "feedback" / student / LAB / f"{LAB}.html").read_text()
        assert HIDDEN_MARKER not in page and "<script" not in page.lower(), student
        if course.autograded_notebook(LAB, student).is_file():
            graded_nb = course.autograded_notebook(LAB, student).read_text()
            assert HIDDEN_MARKER not in graded_nb and "text/html" not in graded_nb, student
    page = (course.root / "feedback" / "good" / LAB / f"{LAB}.html").read_text()
    assert "Does add add?" in page and "passed: 2 of 2 points" in page
    page = (course.root / "feedback" / "wrong" / LAB / f"{LAB}.html").read_text()
    assert "failed: 0 of 2 points" in page and "add(1, 2) should be 3" in page


def test_an_honest_students_feedback_does_not_depend_on_the_class(graded, tmp_path):
    """Graded alone, the good submission gets the same feedback, byte for byte, as beside the hostile ones."""
    course, _, _ = graded
    alone = make_course(tmp_path / "alone")
    submit(alone, {"good": (course.root / "submitted" / "good" / LAB / f"{LAB}.ipynb").read_bytes()})
    grade_lab(alone, LAB, workers=1, limits=LIMITS, progress=False)
    page = lambda c: (c.root / "feedback" / "good" / LAB / f"{LAB}.html").read_bytes()
    assert page(alone) == page(course)


def test_summary_counts_statuses_and_what_happened_and_tests_by_share(graded):
    course, outcomes, _ = graded
    summary = (course.root / "grading" / LAB / "summary.md").read_text()
    assert f"{len(POINTS)} of {len(outcomes)} students graded" in summary
    assert "| not a notebook | 2 |" in summary
    assert "| cell time limit |" in summary and "| kernel died |" in summary and "| memory limit |" in summary
    graded_ = [o for o in outcomes.values() if o.status is Status.GRADED]
    failed_add = sum(1 for o in graded_ if "test_add" in o.lost())
    assert f"| test_add | {failed_add / len(graded_):.0%} |" in summary
    assert (course.root / "grading" / LAB / "failed_tests.png").stat().st_size > 1000


def test_rerun_grades_only_what_changed_and_keeps_earlier_grades(graded):
    course, before, _ = graded
    state = course.root / "grading" / LAB / "state"
    (state / "wrong.json").unlink()  # as if the run had been interrupted before `wrong` was recorded
    good = json.loads((state / "good.json").read_text())  # as if the machine had failed `good`'s kernel
    good["outcome"].update(tests=[], failure={"kind": "KERNEL_START", "detail": "a busy machine"})
    (state / "good.json").write_text(json.dumps(good))
    untouched = course.root / "submitted" / "untouched" / LAB / f"{LAB}.ipynb"
    fixed = nbformat.read(untouched, as_version=4)
    for cell in fixed.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "double":
            cell.source = "def double(x):\n    return 2 * x"
    nbformat.write(fixed, untouched)
    after = {o.student: o for o in grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)}
    assert {s for s, o in after.items() if not o.reused} == {"wrong", "untouched", "good"}
    assert after["untouched"].auto_score == 1 and after["wrong"].auto_score == 1
    assert after["good"].auto_score == 3 and json.loads((state / "good.json").read_text())["outcome"]["failure"] is None


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
    page = lambda student: (course.root / "feedback" / student / LAB / f"{LAB}.html").read_text()
    assert "Submitted 34.0 hours after the due date: a late penalty of 3 points" in page("late")
    assert "after the due date" not in page("on_time")
    again = grade_lab(course, LAB, workers=1, limits=LIMITS, progress=False)
    assert all(o.reused for o in again)
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission(LAB, "late").late_submission_penalty == 0
    assert "after the due date" not in page("late")  # the new due date's page, without regrading


def test_written_answers_wait_for_a_person_and_unchanged_ones_score_zero(graded):
    course, _, _ = graded
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        answered = gb.find_grade("why_easy", LAB, LAB, "written_answer_with_script")
        blank = gb.find_grade("why_easy", LAB, LAB, "untouched")
        assert answered.needs_manual_grade and answered.auto_score is None
        assert not blank.needs_manual_grade and blank.auto_score == 0
        assert gb.find_comment("why_easy", LAB, LAB, "untouched").auto_comment == "No response."


def test_nbgraders_own_feedback_works_on_the_graded_notebooks_and_stays_safe(graded):
    """nbgrader stays the system of record: its generate_feedback reads what `course grade` wrote."""
    course, _, _ = graded
    for student in ("good", "shows_scripts"):
        assert course.api.generate_feedback(LAB, student, force=True)["success"]
        page = (course.root / "feedback" / student / LAB / f"{LAB}.html").read_text()
        assert "Does add add?" in page and HIDDEN_MARKER not in page
        assert "<script>document" not in page and "<script>alert" not in page
