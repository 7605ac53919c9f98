"""`course grade` against real services: a Dask scheduler with two worker processes, and a PostgreSQL gradebook."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from course_utils.grading.classroom import grade_lab
from course_utils.grading.jobs import Limits
from grading_fixtures import LAB, make_course, submissions, submit
from processes import adopt_orphans, grading_processes, wait_for_none

LIMITS = Limits(cell_s=60, submission_s=180)
STUDENTS = {"good": 3, "wrong": 1, "kernel_dies": 0, "reordered": 3}


def _wait_for(check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not come up within {timeout} s")


@pytest.fixture
def dask_scheduler(tmp_path):
    """A Dask scheduler and two single-thread workers, each its own process, on loopback."""
    pytest.importorskip("distributed", reason="Dask distributed is not installed")
    from distributed import Client

    adopt_orphans()
    file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for(file.is_file, "the Dask scheduler")
        address = json.loads(file.read_text())["address"]
        for _ in range(2):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
                 "--host", "127.0.0.1", "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(address, timeout="30s") as client:
            _wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, "two Dask workers")
            workers = set(client.scheduler_info()["workers"])
        yield address, workers
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=120)  # a worker closes its pool first; slow on a loaded machine
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert wait_for_none(60) == []  # a stopped worker ends its zygote


def test_grading_fans_out_over_a_running_dask_cluster(tmp_path, dask_scheduler):
    address, workers = dask_scheduler
    course = make_course(tmp_path / "course")
    files = submissions(course)
    submit(course, {s: files[s] for s in STUDENTS})
    for _ in range(2):  # a cluster reused across runs keeps one zygote per worker process
        outcomes = grade_lab(course, LAB, scheduler=address, limits=LIMITS, force=True, progress=False)
        assert {o.student: o.auto_score for o in outcomes} == STUDENTS
        assert any("exited with status 1" in str(n) for n in next(o for o in outcomes if o.student == "kernel_dies").notes)
        states = (course.root / "grading" / LAB / "state").glob("*.json")
        used = {json.loads(p.read_text())["outcome"]["worker"] for p in states}
        assert used == workers  # both worker processes graded
        zygotes = [p for p in grading_processes() if "kernel.zygote" in p and "--kernel" not in p]
        assert len(zygotes) == 2, zygotes


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_config")
    candidates = [subprocess.run([found, "--bindir"], capture_output=True, text=True).stdout.strip()] if found else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    return next((Path(c) for c in candidates if c and (Path(c) / "initdb").is_file()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on loopback (Debian's `postgresql` package), with a database `gradebook`."""
    psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    as_user = {}
    folder = Path(tempfile.mkdtemp(prefix="course-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the `postgres` account
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = {"user": account.pw_uid, "group": account.pw_gid}
    data, port = folder / "data", _free_port()
    run = lambda *cmd: subprocess.run([str(bindir / cmd[0]), *cmd[1:]], capture_output=True, text=True,
                                      cwd=folder, **as_user)
    init = run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    if init.returncode:
        pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
    start = run("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
                "-o", f"-p {port} -h 127.0.0.1 -k {folder}", "start")
    if start.returncode:
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()[-300:]}")
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE gradebook")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/gradebook"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_grades_land_in_a_postgresql_gradebook(tmp_path, postgres_url):
    course = make_course(tmp_path / "course", config_extra=f"c.CourseDirectory.db_url = {postgres_url!r}")
    assert course.coursedir.db_url == postgres_url
    files = submissions(course)
    submit(course, {s: files[s] for s in STUDENTS})
    outcomes = grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)
    assert {o.student: o.auto_score for o in outcomes} == STUDENTS
    with Gradebook(postgres_url, course.coursedir.course_id) as gb:
        assert {s: gb.find_submission_notebook(LAB, LAB, s).score for s in STUDENTS} == STUDENTS
    assert not (course.root / "gradebook.db").exists()  # nothing went to a SQLite file instead
    feedback = course.root / "feedback" / "good" / LAB / f"{LAB}.html"
    assert "Does add add?" in feedback.read_text()
    nb = nbformat.read(course.autograded_notebook(LAB, "good"), as_version=4)
    assert all(o.get("output_type") != "error" for c in nb.cells for o in c.get("outputs", []))
