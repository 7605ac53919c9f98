"""Does every real lab's solution earn full marks through `course grade`'s sandboxed kernel, not only `course validate`'s?

The sandbox forbids what ordinary notebooks may do (native code through ctypes, writing outside the
submission's folder) and watches the names tests use, so a lab can pass validation and still lose
points here; this runs each lab's solution notebook through it in quick mode.
"""

from __future__ import annotations

import nbformat
import pytest

from course_utils.grading import grade_lab
from course_utils.pipeline import Course
from conftest import REPO

LABS = Course(REPO).labs()


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, object]:
    course = Course.copy_of(REPO, tmp_path_factory.mktemp("labs") / "course", LABS)
    outcomes = {}
    for lab in LABS:
        course.release(lab)
        course.submit(lab, "solution", nbformat.read(course.source_notebook(lab), as_version=4))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("COURSE_QUICK", "1")  # as `course grade` sets it for its kernels
        for lab in LABS:
            (outcomes[lab],) = grade_lab(course, lab, workers=2, progress=False)
    return outcomes


@pytest.mark.parametrize("lab", LABS)
def test_solution_earns_full_marks_in_the_grading_sandbox(lab, graded):
    """Is the solution graded (not refused), untouched by the tampering guard, and given every autograded point?"""
    outcome = graded[lab]
    assert outcome.failure is None, f"{lab}: the solution could not be graded: {outcome.failure}"
    assert not outcome.notes, f"{lab}: the grader noted {outcome.notes}"
    result = outcome.result
    assert result.auto_score == result.max_auto_score > 0, f"{lab}: the solution loses {sorted(result.lost())}"
