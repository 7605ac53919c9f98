"""The instructor's formgrader, opened from JupyterLab's Nbgrader menu: assignments, scores, one submission."""

from __future__ import annotations

import re

import pytest

import lab_notebooks as ln
from course_utils.grading.classroom import grade_lab
from course_utils.grading.course import Course
from course_utils.grading.results import SubmissionOutcome
from lab_server import require_browser

require_browser()

from lab_ui import click_menu  # noqa: E402 (needs Playwright, checked just above)
from playwright.sync_api import expect  # noqa: E402

# nbgrader's gradebook warns about SQLAlchemy sessions while autograding; `course` hides the same noise.
pytestmark = pytest.mark.filterwarnings("ignore:.*not in session.*")

GRADED_LAB = "conv_shapes"  # the quickest lab to autograde
SOLUTION, MISTAKE = "solution", "typical_mistake"


@pytest.fixture(scope="module")
def graded(course_root, kernel_env) -> dict[str, SubmissionOutcome]:
    """Release every lab, then submit and grade (as `course grade` does) the solution and the first typical mistake
    of GRADED_LAB."""
    course = Course(course_root)
    with pytest.MonkeyPatch.context() as env:
        for name, value in kernel_env.items():
            env.setenv(name, value)
        for lab in course.labs():
            course.release(lab)
        course.submit(GRADED_LAB, SOLUTION, ln.read(course.source_notebook(GRADED_LAB)))
        course.submit(GRADED_LAB, MISTAKE, course.notebook_with_mistake(GRADED_LAB, course.mistakes(GRADED_LAB)[0]))
        return {o.student: o for o in grade_lab(course, GRADED_LAB, workers=2, progress=False)}


def shown(score: float, max_score: float) -> str:
    """A score as formgrader writes it, e.g. "4 / 12"."""
    return f"{score:g} / {max_score:g}"


def test_formgrader_lists_labs_and_shows_autograded_scores(graded, course_root, lab_server, page, shoot):
    labs = Course(course_root).labs()
    page.goto(lab_server.lab_url("instructor"))
    click_menu(page, "Nbgrader", "Formgrader")
    frame = page.frame_locator("iframe[src*='formgrader']")

    # Manage Assignments: one row per lab, with the number of submissions.
    rows = frame.locator("#main-table tr")
    expect(rows).to_have_count(len(labs), timeout=60_000)
    for lab in labs:
        expect(frame.locator("#main-table td.name", has_text=re.compile(f"^{lab}$"))).to_have_count(1)
    row = rows.filter(has=frame.locator("td.name", has_text=re.compile(f"^{GRADED_LAB}$")))
    expect(row.locator("td.num-submissions")).to_have_text(str(len(graded)))
    shoot(page, "formgrader-1-assignments")

    # Manage Submissions: each student's total as the gradebook holds it; written answers await a person.
    row.locator("td.num-submissions a").click()
    for student, result in graded.items():
        submission = frame.locator("#main-table tr", has=frame.locator("td.student-id", has_text=student))
        total = shown(sum(t.score or 0 for t in result.tests), sum(t.max_points for t in result.tests))
        expect(submission.locator("td.score")).to_have_text(total, timeout=60_000)
        expect(submission.locator("td.status")).to_have_text("needs manual grading")
    solution, mistake = graded[SOLUTION], graded[MISTAKE]
    assert solution.auto_score == solution.max_auto_score > mistake.auto_score, "the mistake should cost points"
    shoot(page, "formgrader-2-submissions")

    # One autograded submission: the solution's notebook, every test cell with the points it earned.
    frame.locator("#main-table tr", has=frame.locator("td.student-id", has_text=SOLUTION)).locator(
        "td.student-name a").click()
    notebook = frame.locator("#main-table tr").first
    expect(notebook.locator("td.code-score")).to_have_text(shown(solution.auto_score, solution.max_auto_score),
                                                          timeout=60_000)
    notebook.locator("td.name a").click()
    tests = [t for t in solution.tests if t.autograded]
    for test in tests:
        expect(frame.locator(f"input.score#{test.grade_id}")).to_have_attribute(
            "placeholder", f"{test.score:g}", timeout=60_000)
    frame.locator(f"input.score#{tests[0].grade_id}").scroll_into_view_if_needed()
    shoot(page, "formgrader-3-autograded-submission")
