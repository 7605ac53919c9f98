"""Ctrl-C or a hang-up in the middle of `course grade` loses nothing: every student is recorded whole (grade,
feedback page, graded notebook and state) or not at all, the run says what is left, and the next run finishes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from nbgrader.api import Gradebook

from course_utils.grading.classroom import grade_lab
from course_utils.grading.course import CourseError
from course_utils.grading.jobs import Limits
from grading_fixtures import LAB, make_course, submissions, submit
from processes import adopt_orphans, grading_processes, wait_for_none

FINISHED, ENDLESS = ["a_good", "b_wrong"], ["c_endless", "d_endless"]  # graded in this order by two workers
INTERRUPTED = 3  # the exit status of the script below when grading was interrupted
LIMITS = Limits(cell_s=100, submission_s=200)  # the endless kernels run until the signal comes

SCRIPT = """
import sys
from course_utils.grading.classroom import grade_lab
from course_utils.grading.course import Course
from course_utils.grading.jobs import Limits
from course_utils.grading.results import GradingInterrupted
try:
    grade_lab(Course({root!r}), {lab!r}, workers=2, limits=Limits({cell}, {total}), progress=False)
except GradingInterrupted as stop:
    print("interrupted", stop.lab, stop.graded, stop.left, flush=True)
    sys.exit({code})
"""


def _recorded(course) -> dict[str, set[str]]:
    """Who has what: a state, a grade in the gradebook, a feedback page, a graded notebook."""
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        in_gradebook = {s.student.id for s in gb.find_assignment(LAB).submissions}
    students = FINISHED + ENDLESS
    return {"state": {p.stem for p in (course.root / "grading" / LAB / "state").glob("*.json")},
            "gradebook": in_gradebook,
            "feedback": {s for s in students if course.feedback_page(LAB, s).is_file()},
            "autograded": {s for s in students if course.autograded_notebook(LAB, s).is_file()}}


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "hang-up"])
def test_a_stopped_run_keeps_every_finished_student_whole_and_the_next_run_finishes(tmp_path, stop):
    adopt_orphans()
    course = make_course(tmp_path / "course")
    files = submissions(course)
    submit(course, {"a_good": files["good"], "b_wrong": files["wrong"]})
    submit(course, {s: files["endless_kernel"] for s in ENDLESS})
    script = textwrap.dedent(SCRIPT.format(root=str(course.root), lab=LAB, code=INTERRUPTED, cell=LIMITS.cell_s,
                                           total=LIMITS.submission_s))
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = course.root / "grading" / LAB / "state"
    deadline = time.monotonic() + 240
    while len(list(state.glob("*.json"))) < len(FINISHED):  # the quick ones are recorded, the endless ones run
        assert time.monotonic() < deadline and run.poll() is None, "grading did not get as far as expected"
        time.sleep(0.2)
    assert any("bwrap" in p for p in grading_processes())
    with pytest.raises(CourseError, match=f"being graded by another `course grade` \\(process {run.pid}\\)"):
        grade_lab(course, LAB, workers=1, progress=False)  # a second run while the first holds the lab
    run.send_signal(stop)
    out, err = run.communicate(timeout=90)
    assert run.returncode == INTERRUPTED, err[-3000:]
    assert out.strip() == f"interrupted {LAB} 2 2"
    assert "Traceback" not in err
    recorded = _recorded(course)
    assert all(who == set(FINISHED) for who in recorded.values()), recorded
    assert not [p for d in ("autograded", "feedback", "grading") for p in (course.root / d).rglob(".*")]  # no temp file
    assert wait_for_none(30) == []

    submit(course, {s: files["good"] for s in ENDLESS})
    again = {o.student: o for o in grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)}
    assert {s for s, o in again.items() if not o.reused} == set(ENDLESS)
    assert {s: o.auto_score for s, o in again.items()} == {"a_good": 3, "b_wrong": 1, "c_endless": 3, "d_endless": 3}
    assert all(who == set(FINISHED + ENDLESS) for who in _recorded(course).values())
