"""The classroom on a JupyterHub, end to end in Chromium: fetch, answer, validate, submit, grade, feedback.

The hub (with configurable-http-proxy and one server per user, each as its own system user) runs on
loopback ports for this module only; the system users it makes are deleted at the end, and no process of the
hub or of those users may outlive it. Screenshots of each step and the hub's log go to build/hub-screenshots/
(beside the browser suite's folder, so that both suites can run at once). Without root, JupyterHub, the proxy
or Chromium the module skips, or fails with the reason when COURSE_REQUIRE_BROWSER=1 (as CI sets it).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sysconfig
import sys
import tempfile
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import nbformat
import pytest
from nbgrader.api import Gradebook, MissingEntry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
import lab_server as ls  # noqa: E402

from course_utils.grading import hub as hubs  # noqa: E402
from course_utils.grading.services import DIRECT, descendants  # noqa: E402
from course_utils.grading.course import Course  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LAB = "conv_shapes"  # the fastest lab to grade
SHOTS = REPO / "build" / "hub-screenshots"
LEFT_UNANSWERED = "conv_param_count"  # the partly wrong student leaves this exercise as released
WRITTEN = "derive_output_size"  # the written answer the instructor grades by hand
HAND_SCORE = 2.0

ls.require_browser()
# A checkout in a private folder (a CI clone in `mktemp -d`): users may pass through to its environment for the
# test's length, as they could through a class machine's install; the modes are put back at the end.
_opened = hubs.open_way_to(Path(sysconfig.get_paths()["purelib"])) if os.geteuid() == 0 else {}
_reason = hubs.why_not()
if _reason is not None:
    hubs.reopen(_opened)
    if os.environ.get(ls.REQUIRE_ENV) == "1":
        pytest.fail(f"{ls.REQUIRE_ENV}=1 but the hub cannot start: {_reason}", pytrace=False)
    pytest.skip(f"the hub cannot start here: {_reason}", allow_module_level=True)


def api(url: str, token: str, method: str = "GET", body: object = None) -> tuple[int, object]:
    """(status, JSON reply) of a hub or server API call authenticated by `token`."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"token {token}"})
    try:
        with DIRECT.open(request, timeout=120) as reply:
            text = reply.read().decode()
            return reply.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        return err.code, None


@pytest.fixture(scope="module", autouse=True)
def way_back() -> Iterator[None]:
    """The folders above the environment as they were, after everything else of the test is gone."""
    yield
    hubs.reopen(_opened)


@pytest.fixture(scope="module")
def classroom() -> Iterator[hubs.Hub]:
    """A running hub with one instructor and two students; everything of it is gone afterwards."""
    if SHOTS.is_dir():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    prefix = "cuhub" + secrets.token_hex(2)
    place = Path(tempfile.mkdtemp(prefix="course-hub-"))  # pytest's own temporary folders are root's alone
    place.chmod(0o755)
    state = place / "state"
    settings = None
    hub = None
    outlived, theirs = [], []
    try:
        settings = hubs.prepare(Course(REPO), state, f"{prefix}i", [f"{prefix}a", f"{prefix}b"],
                                secrets.token_hex(8), [LAB])
        hub = hubs.start_hub(settings, SHOTS / "jupyterhub.log")
        yield hub
    finally:
        if hub is not None:
            outlived = hub.stop()
            hubs.reopen(hub.closed)  # the checkout as it was (a class's machine keeps it closed)
        if settings is not None:  # (prepare removes what it made when it fails)
            theirs = [line for user in [settings.instructor, *settings.students]
                      for line in subprocess.run(["ps", "-o", "pid=,args=", "-u", user], capture_output=True,
                                                 text=True).stdout.splitlines()]
            hubs.remove_users(settings)
        shutil.rmtree(place, ignore_errors=True)
    left = [u for u in ["i", "a", "b"] if subprocess.run(["id", f"{prefix}{u}"], capture_output=True).returncode == 0]
    assert not left, f"system users left behind: {left}"
    assert not outlived, f"processes that outlived the hub (killed): {outlived}"
    assert not theirs, f"the users' processes still running after the hub stopped (killed): {theirs}"
    still = descendants(os.getpid())
    assert not still, f"processes this test started still running: {still}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=ls.chromium_path(), args=ls.CHROMIUM_FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(browser, hub: hubs.Hub, user: str):
    """A fresh browser session of `user`, logged in and showing their JupyterLab."""
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{hub.settings.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", hub.settings.password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{user}/lab"))
    page.wait_for_selector("#jp-main-dock-panel")
    return page


def open_assignments(page) -> str:
    """Open the Assignments tab from the Nbgrader menu; return what that menu offered."""
    page.get_by_role("menuitem", name="Nbgrader").click()
    offered = page.locator(".lm-Menu").last.inner_text()
    page.get_by_text("Assignment List", exact=True).click()
    page.wait_for_selector("#released_assignments_list")
    return offered


def user_token(hub: hubs.Hub, user: str) -> str:
    status, reply = api(f"{hub.settings.url}/hub/api/users/{user}/tokens", hub.settings.api_token, "POST",
                        {"note": "hub test", "expires_in": 3600})
    assert status == 201, status
    return reply["token"]


def answered(released: nbformat.NotebookNode, wrong: bool) -> nbformat.NotebookNode:
    """The released notebook with the solution's answers typed in (all but one exercise when `wrong`)."""
    source = nbformat.read(REPO / "source" / LAB / f"{LAB}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in released.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers and not (wrong and grade_id == LEFT_UNANSWERED):
            cell.source = "\n".join(line for line in answers[grade_id].splitlines() if "## BEGIN" not in line
                                    and "## END" not in line)
    return released


def as_user(hub: hubs.Hub, user: str, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    cwd = hub.settings.course_root() if user == hub.settings.instructor else hub.settings.home(user)
    return hubs.run(cmd, user=user, cwd=cwd, env=hubs.user_env(hub.settings, user), check=check)


def can_read(hub: hubs.Hub, user: str, path: Path) -> bool:
    """Whether `user`'s own processes (their kernel, say) can read file `path` or list folder `path`."""
    code = f"import os, sys; p = {str(path)!r}; os.listdir(p) if os.path.isdir(p) else open(p, 'rb').read()"
    return as_user(hub, user, ["python", "-c", code], check=False).returncode == 0


def test_whole_loop(classroom: hubs.Hub, browser) -> None:
    hub, settings = classroom, classroom.settings
    good, partly = settings.students
    pages, tokens = {}, {}

    # Students log in, fetch the lab in the Assignments tab, answer, validate and submit there.
    for student in settings.students:
        page = pages[student] = log_in(browser, hub, student)
        tokens[student] = user_token(hub, student)
        page.screenshot(path=str(SHOTS / f"01-{student}-lab.png"))
        offered = open_assignments(page)
        assert "Assignment List" in offered and "Formgrader" not in offered, f"a student's Nbgrader menu: {offered}"
        page.locator("#released_assignments_list").get_by_role("button", name="Fetch").click()
        page.locator("#fetched_assignments_list").get_by_text(LAB).first.wait_for()
        page.screenshot(path=str(SHOTS / f"02-{student}-fetched.png"))
        url = f"{settings.url}/user/{student}/api/contents/{LAB}/{LAB}.ipynb"
        status, model = api(url, tokens[student])
        assert status == 200, status
        notebook = answered(nbformat.from_dict(model["content"]), wrong=student == partly)
        status, _ = api(url, tokens[student], "PUT", {"type": "notebook", "format": "json", "content": notebook})
        assert status == 200, status
        fetched = page.locator("#fetched_assignments_list")
        fetched.get_by_text(LAB).first.click()  # unfolds the lab's notebooks, each with Validate
        fetched.get_by_role("button", name="Validate").click()
        page.locator(".jp-Dialog").wait_for()
        page.screenshot(path=str(SHOTS / f"03-{student}-validated.png"))
        verdict = page.locator(".jp-Dialog").inner_text()
        assert ("failed" in verdict and LEFT_UNANSWERED in verdict) if student == partly else "Success" in verdict, \
            verdict[:500]
        page.locator(".jp-Dialog").get_by_role("button").last.click()
        fetched.get_by_role("button", name="Submit").click()
        page.locator("#submitted_assignments_list").get_by_text(LAB).first.wait_for()
        page.screenshot(path=str(SHOTS / f"04-{student}-submitted.png"))

    # The instructor collects, then grades in their terminal: as an unprivileged user `course grade` either grades
    # every submission or refuses with the reason and a non-zero status, never ending with 0 and nothing graded.
    course = Course(settings.course_root())
    as_user(hub, settings.instructor, ["python", "-m", "nbgrader", "collect", LAB])
    own = as_user(hub, settings.instructor, ["course", "grade", LAB], check=False)
    scored = [s for s in settings.students if recorded_score(course, s) is not None]
    if own.returncode == 0:
        assert scored == settings.students, own.stdout[-3000:]
    else:
        assert own.returncode == 1 and "as root" in own.stderr and "Traceback" not in own.stderr and not scored, \
            own.stdout[-2000:] + own.stderr[-2000:]
        graded = hubs.grade_as_root(settings, ["grade", LAB])  # what `sudo .venv/bin/python hub/grade LAB` runs
        assert graded.returncode == 0, graded.stdout + graded.stderr
    teacher = log_in(browser, hub, settings.instructor)
    token = user_token(hub, settings.instructor)
    formgrader = f"{settings.url}/user/{settings.instructor}/formgrader"
    teacher.goto(f"{formgrader}/manage_submissions/{LAB}")
    teacher.get_by_text(partly).first.wait_for()
    teacher.screenshot(path=str(SHOTS / "05-instructor-formgrader.png"))
    status, notebooks = api(f"{formgrader}/api/submitted_notebooks/{LAB}/{LAB}", token)
    assert status == 200, status
    submission = next(n for n in notebooks if n["student"] == partly)
    status, grades = api(f"{formgrader}/api/grades?submission_id={submission['id']}", token)
    written = next(g for g in grades if g["name"] == WRITTEN)
    status, _ = api(f"{formgrader}/api/grade/{written['id']}", token, "PUT",
                    {"manual_score": HAND_SCORE, "extra_credit": 0})
    assert status == 200, status
    teacher.goto(f"{formgrader}/submissions/{submission['id']}/")
    teacher.wait_for_load_state("networkidle")
    teacher.screenshot(path=str(SHOTS / "06-instructor-hand-graded.png"))
    as_user(hub, settings.instructor, ["python", "-m", "course_utils.grading.hub", "feedback", LAB])

    # Each student fetches their feedback in the tab and reads their own page: their score, no hidden test.
    hidden = hidden_test_lines()
    scores = {s: recorded_score(course, s) for s in settings.students}
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        max_score = gb.find_assignment(LAB).max_score
    assert scores[good] > scores[partly], scores
    for student, page in pages.items():
        page.locator("#submitted_assignments_list").get_by_role("button", name="Fetch Feedback").first.click()
        page.locator("#submitted_assignments_list").get_by_text("view feedback").first.wait_for()
        page.screenshot(path=str(SHOTS / f"07-{student}-feedback-fetched.png"))
        status, folder = api(f"{settings.url}/user/{student}/api/contents/{LAB}/feedback", tokens[student])
        assert status == 200 and folder["content"], f"no feedback fetched for {student}"
        html = f"{LAB}/feedback/{folder['content'][0]['name']}/{LAB}.html"
        page.goto(f"{settings.url}/user/{student}/files/{html}")
        page.screenshot(path=str(SHOTS / f"08-{student}-feedback-page.png"), full_page=True)
        text = page.locator("body").inner_text()
        assert re.search(rf"\b{scores[student]:g}\b", text) and re.search(rf"\b{max_score:g}\b", text), \
            f"{student}'s page does not show {scores[student]:g} of {max_score:g}"
        shown = [line for line in hidden if line in text]
        assert hidden and not shown, f"{student}'s page shows hidden tests: {shown[:3]}"

    # Nobody reads another's work: not through the hub, not through the files their own processes can open.
    other_feedback = settings.home(good) / html.replace("/", os.sep)
    # Nor the course: the instructor's copy, the checkout the hub was started from, the instructor-only oracles.
    oracles = hubs.site_packages(settings.path("instructor-env")) / "course_oracles"
    for path in [settings.home(good) / LAB / f"{LAB}.ipynb", other_feedback, settings.course_root(),
                 settings.course_root() / "source" / LAB / f"{LAB}.ipynb",
                 settings.exchange() / settings.course_id / "inbound",
                 settings.exchange() / settings.course_id / "feedback",
                 REPO, REPO / "source" / LAB / f"{LAB}.ipynb", REPO / "course_oracles" / "__init__.py",
                 oracles / "__init__.py"]:
        assert not can_read(hub, partly, path), f"{partly} can read {path}"
    assert can_read(hub, partly, settings.home(partly) / LAB / f"{LAB}.ipynb")  # the check itself works
    assert can_read(hub, settings.instructor, oracles / "__init__.py")
    for user in [good, settings.instructor]:
        status, _ = api(f"{settings.url}/user/{user}/api/contents/{LAB}", tokens[partly])
        assert status in (403, 404), f"{partly} reads {user}'s files through the hub ({status})"

    # A late submission through the exchange keeps nbgrader's timestamp, and the gradebook counts it late.
    due = datetime.now(timezone.utc) - timedelta(hours=1)
    as_user(hub, settings.instructor, ["python", "-m", "nbgrader", "db", "assignment", "add", LAB,
                                       f"--duedate={due:%Y-%m-%d %H:%M:%S} UTC"])
    as_user(hub, partly, ["python", "-m", "nbgrader", "submit", LAB])
    as_user(hub, settings.instructor, ["python", "-m", "nbgrader", "collect", "--update", LAB])
    from course_utils.grading.submissions import read_submission
    late = read_submission(course, partly, LAB)
    stamp = (course.folder("submitted", LAB, partly) / "timestamp.txt").read_text().strip()
    assert late.timestamp is not None and late.timestamp.replace(tzinfo=late.timestamp.tzinfo or timezone.utc) > due, \
        (late.timestamp, due, stamp)  # nbgrader's timestamps are UTC
    assert late.timestamp.strftime("%Y-%m-%d %H:%M:%S") in stamp, (late.timestamp, stamp)
    regraded = hubs.grade_as_root(settings, ["grade", LAB, "--student", partly])
    assert regraded.returncode == 0, regraded.stdout + regraded.stderr
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        assert gb.find_submission(LAB, partly).total_seconds_late > 0


def recorded_score(course: Course, student: str) -> float | None:
    """`student`'s score of LAB in the gradebook; None when no grade is recorded."""
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        try:
            return gb.find_submission(LAB, student).score
        except MissingEntry:
            return None


def hidden_test_lines() -> list[str]:
    """The distinctive lines of the lab's hidden tests found nowhere in the release or the answers (no page may show them)."""
    source = nbformat.read(REPO / "source" / LAB / f"{LAB}.ipynb", as_version=4)
    released = "\n".join(c.source for c in nbformat.read(REPO / "release" / LAB / f"{LAB}.ipynb", as_version=4).cells)
    released += "\n".join(c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("solution"))  # answers
    lines = []
    for cell in source.cells:
        inside = False
        for line in cell.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 25 and line.strip() not in released:
                lines.append(line.strip())
    return lines
