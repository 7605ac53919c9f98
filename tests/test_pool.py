"""Do the processes of a grading run (zygote, sandboxes, kernels) end with it, however it ends?"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from course_utils.grading.classroom import grade_lab
from course_utils.grading.jobs import Limits
from course_utils.grading.pool import GradingPool
from course_utils.kernel.zygote import FOLDER_PREFIX, remove_orphans
from grading_fixtures import LAB, make_course, submissions, submit
from processes import adopt_orphans, grading_processes, wait_for_none

LIMITS = Limits(cell_s=10, submission_s=60, memory_mb=2048)


@pytest.fixture(autouse=True)
def subreaper():
    adopt_orphans()


@pytest.fixture
def course(tmp_path):
    made = make_course(tmp_path / "course")
    files = submissions(made)
    submit(made, {s: files[s] for s in ("good", "wrong", "kernel_dies", "leaves_a_daemon")})
    return made


def test_repeated_grading_leaves_no_process_behind(course):
    assert grading_processes() == []
    for _ in range(3):
        outcomes = grade_lab(course, LAB, workers=2, limits=LIMITS, force=True, progress=False)
        assert {o.student: o.auto_score for o in outcomes}["good"] == 3
        assert wait_for_none() == []


def test_one_pool_grades_several_runs_with_one_zygote_and_ends_with_them(course):
    with GradingPool(2) as pool:
        for _ in range(2):
            grade_lab(course, LAB, pool=pool, limits=LIMITS, force=True, progress=False)
        zygotes = [p for p in grading_processes() if "course_utils.kernel.zygote" in p and "--kernel" not in p]
        assert len(zygotes) == 1, zygotes
    assert wait_for_none() == []


def test_an_interrupted_run_leaves_no_process_behind(course):
    endless = submissions(course)["endless_kernel"]
    submit(course, {f"endless_{i}": endless for i in range(4)})
    script = textwrap.dedent(f"""
        from course_utils.grading.classroom import grade_lab
        from course_utils.grading.course import Course
        from course_utils.grading.jobs import Limits
        grade_lab(Course({str(course.root)!r}), {LAB!r}, workers=2, limits=Limits(cell_s=60, submission_s=120),
                  force=True, progress=False)
    """)
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any("bwrap" in p for p in grading_processes()):  # wait until kernels are running
        assert time.monotonic() < deadline and run.poll() is None, "grading never started"
        time.sleep(0.2)
    time.sleep(3)
    run.send_signal(signal.SIGINT)  # Ctrl-C
    run.wait(timeout=60)
    assert wait_for_none(30) == []


def test_the_folders_of_killed_grading_processes_are_removed_by_the_next_one():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{dead.pid}-"))
    mine = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
    (gone / "zygote.sock").write_text("")
    try:
        remove_orphans()
        assert not gone.exists() and mine.exists()
    finally:
        shutil.rmtree(gone, ignore_errors=True), shutil.rmtree(mine, ignore_errors=True)


QUIET_CLOSE = textwrap.dedent("""
    import asyncio, logging
    from course_utils.grading.pool import GradingPool

    async def cancelled_as_the_loop_stops():
        try:
            await asyncio.sleep(3600)
        finally:  # as a BatchedSend that finds its comm closed while the loop cancels it
            logging.getLogger("distributed.batched").info("Batched Comm Closed: late")

    for _ in range(2):
        with GradingPool(1, isolated=False) as pool:
            pool.client.loop.add_callback(cancelled_as_the_loop_stops)
            assert pool.client.run(len, "four") == {w: 4 for w in pool.client.scheduler_info()["workers"]}
    print("closed")
""")


def test_a_pool_closes_quietly_when_its_loop_logs_while_stopping():
    """distributed logs INFO records (a "Batched Comm Closed" traceback) from the tasks its event loop cancels as
    it stops, after LocalCluster's own `silence_logs` has ended: the pool keeps them off stderr until the loop is
    gone, and afterwards distributed's handlers are as they were."""
    run = subprocess.run([sys.executable, "-c", QUIET_CLOSE + textwrap.dedent("""
        handlers = [h for h in logging.getLogger("distributed").handlers if isinstance(h, logging.StreamHandler)]
        assert handlers and all(h.level == logging.NOTSET for h in handlers), [h.level for h in handlers]
    """)], capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0 and run.stdout.strip() == "closed", run.stderr
    assert run.stderr == ""
    assert grading_processes() == []
