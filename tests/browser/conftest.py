"""Fixtures of the browser tests: a temporary copy of the course, one JupyterLab server, one Chromium.

Screenshots (and the server's log) go to build/screenshots/; the folder is printed at the end of the
run. Every process the fixtures start is stopped at the end of the session, whatever happened.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Callable, Iterator

import nbformat
import pytest

import lab_notebooks as ln
import lab_server as ls
from course_utils.grading.course import Course

SCREENSHOTS = ln.REPO / "build" / "screenshots"
SERVER_LOG = SCREENSHOTS / "jupyter-server.log"
VIEWPORT = {"width": 1400, "height": 900}
ARTEFACTS_MADE = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    shots = sorted(SCREENSHOTS.glob("*.png"))
    if shots and config.stash.get(ARTEFACTS_MADE, False):
        terminalreporter.write_line(f"browser tests: {len(shots)} screenshots and the server log in {SCREENSHOTS}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"report_{report.when}", report)  # lets the page fixture photograph a failure
    return report


@pytest.fixture(scope="session", autouse=True)
def no_process_left() -> Iterator[None]:
    """Set up first, torn down last: fail the session if any process the tests started still runs."""
    yield
    left = ls.descendants(os.getpid())
    for pid, _ in left:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    assert not left, f"processes still running after the browser tests (now killed): {[pid for pid, _ in left]}"


@pytest.fixture(scope="session")
def kernel_env() -> dict[str, str]:
    """Variables for the server and every kernel: this checkout's course_utils, quick experiments."""
    env = {"COURSE_QUICK": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ln.REPO), os.environ.get("PYTHONPATH")]))}
    if "COURSE_DATA_ROOT" in os.environ:  # kernels run in the notebook's folder, so a relative root would break
        env["COURSE_DATA_ROOT"] = os.path.abspath(os.environ["COURSE_DATA_ROOT"])
    return env


@pytest.fixture(scope="session")
def artefacts(pytestconfig: pytest.Config) -> Path:
    """build/screenshots/, emptied first so that no old run's picture passes for this one's."""
    pytestconfig.stash[ARTEFACTS_MADE] = True
    if SCREENSHOTS.is_dir():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def course_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary course: config and source/ for the instructor, student/ and solutions/ notebooks."""
    root = tmp_path_factory.mktemp("course")
    Course.copy_of(ln.REPO, root, Course(ln.REPO).labs())
    for lab in ln.release_labs():
        shutil.copytree(ln.REPO / "release" / lab, root / "student" / lab)
        (root / "solutions" / lab).mkdir(parents=True)
        solution = ln.without_outputs(ln.read(ln.REPO / "source" / lab / f"{lab}.ipynb"))
        nbformat.write(solution, root / "solutions" / lab / f"{lab}.ipynb")
    return root


@pytest.fixture(scope="session")
def lab_server(course_root: Path, artefacts: Path, kernel_env: dict[str, str],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[ls.LabServer]:
    """`jupyter lab` serving the temporary course on 127.0.0.1; stopped with all its kernels at the end."""
    server = ls.start_lab(course_root, tmp_path_factory.mktemp("jupyter-home"), SERVER_LOG, kernel_env)
    try:
        yield server
    finally:
        ls.stop(server.process)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Headless system Chromium with a fresh profile, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=ls.chromium_path(),
            args=ls.CHROMIUM_FLAGS, headless=True, viewport=VIEWPORT)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser, artefacts: Path, request: pytest.FixtureRequest):
    """A new browser tab; when the test fails, its last view is saved as FAILED-<test>.png."""
    page = browser.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            page.screenshot(path=str(artefacts / f"FAILED-{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}.png"))
        page.close()


@pytest.fixture
def shoot(artefacts: Path) -> Callable[..., Path]:
    """shoot(page, name) saves the window as build/screenshots/<name>.png and returns the path."""
    def take(page, name: str) -> Path:
        path = artefacts / f"{name}.png"
        page.screenshot(path=str(path))
        return path
    return take
