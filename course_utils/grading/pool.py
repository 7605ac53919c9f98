"""Where grading jobs run, and the processes they need, each with a lifetime that ends with its run.

A `GradingPool` is one set of Dask workers (local threads, or a running cluster) for as long as a
`with` block lasts: `course grade`, `course validate` and `course demo` open one for all their labs.
Every process that grades (the kernel zygote, the cgroups of its jobs) belongs to the *resources* of
one worker process, made on first use and ended by `close_local_resources`: when the pool closes on
this machine, or when a cluster worker stops (`GradingPlugin.teardown`). A worker that is reused across
runs keeps exactly one zygote.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Callable

from .cgroups import Cgroups
from .jobs import GradeJob, JobResult, run_job
from .sandbox import check_isolation
from .zygote import Zygote

PLUGIN = "course-grading"


@dataclass
class Resources:
    """What the jobs of one worker process share: a zygote, a parent cgroup where the machine has one, and the
    jobs' kernels still running (ended with the resources, so that an interrupted run leaves nothing)."""

    zygote: Zygote
    cgroups: Cgroups | None
    running: set = field(default_factory=set)

    def close(self) -> None:
        for kernel in list(self.running):
            kernel.terminate()  # its job sees the kernel gone, finishes, and cleans up the rest
        self.zygote.close()
        if self.cgroups is not None:
            self.cgroups.remove()


_lock = threading.Lock()
_resources: Resources | None = None


def local_resources() -> Resources:
    """This process's grading resources, started on first use."""
    global _resources
    with _lock:
        if _resources is None:
            _resources = Resources(Zygote(), Cgroups.create(f"course-grade-{os.getpid()}"))
        return _resources


def close_local_resources() -> None:
    """End this process's zygote and remove its cgroups (a later job starts new ones)."""
    global _resources
    with _lock:
        resources, _resources = _resources, None
    if resources is not None:
        resources.close()


def worker_check(isolated: bool) -> str | None:
    """Run on each worker before a grading run: why this worker cannot grade as asked, or None. A worker that
    can grade starts its zygote now, so that it imports torch while the run is being prepared."""
    problem = check_isolation() if isolated else None
    if problem is None:
        local_resources()
    return problem


def _plugin_class() -> type:
    from distributed import WorkerPlugin

    class GradingPlugin(WorkerPlugin):
        """A Dask worker plugin: the worker's grading resources end when the worker does."""

        name = PLUGIN

        def teardown(self, worker=None) -> None:
            close_local_resources()

    return GradingPlugin


class GradingPool:
    """Dask workers for a grading run: `workers` local threads, or the running cluster at `scheduler`."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, isolated: bool = True):
        from distributed import Client, LocalCluster

        from .course import CourseError

        self.scheduler, self.isolated = scheduler, isolated
        self.workers = max(1, workers or os.cpu_count() or 1)
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except OSError as err:
                raise CourseError(f"Cannot reach the Dask scheduler at {scheduler}: {err}") from None
            self.cluster = None
        else:
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=False,
                                        dashboard_address=":0", silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        try:
            problems = {w: p for w, p in self.client.run(worker_check, isolated).items() if p}
            if problems:
                worker, problem = next(iter(problems.items()))
                raise CourseError(f"Cannot grade in sandboxes on {'this machine' if not scheduler else worker}: "
                                  f"{problem}.")
            self.client.register_plugin(_plugin_class()(), name=PLUGIN)
        except BaseException:
            self.close()
            raise

    @property
    def threads(self) -> int:
        """CPU threads each job's kernel may use."""
        return 1 if self.scheduler else max(1, (os.cpu_count() or 1) // self.workers)

    def run(self, jobs: dict[str, GradeJob], on_result: Callable[[str, JobResult], None]) -> None:
        """Grade `jobs` (key -> job) in parallel, calling `on_result(key, result)` as each one finishes."""
        def lost(key: str, err: Exception) -> JobResult:  # the worker itself was lost; the submission is not to blame
            return JobResult(jobs[key].student, failure=f"grading worker lost: {type(err).__name__}: {err}"[:300])

        self.map(run_job, jobs, on_result, lost)

    def map(self, func: Callable, tasks: dict[str, object], on_result: Callable[[str, object], None],
            on_error: Callable[[str, Exception], object]) -> None:
        """Run `func(task)` for every task in parallel; `on_result(key, value)` as each finishes (with
        `on_error(key, error)`'s value when the worker running it was lost)."""
        from distributed import as_completed

        futures = {self.client.submit(func, task, key=f"{func.__name__}-{key}-{os.urandom(4).hex()}", pure=False,
                                      retries=0): key for key, task in tasks.items()}
        try:
            for future in as_completed(futures):
                key = futures[future]
                try:
                    value = future.result()
                except Exception as err:
                    value = on_error(key, err)
                on_result(key, value)
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        """Stop the workers; on this machine, end the zygote and the cgroups too."""
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
                close_local_resources()

    def __enter__(self) -> "GradingPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def grade_all(pool: GradingPool | None, jobs: dict[str, GradeJob], on_result: Callable[[str, JobResult], None],
              workers: int | None = None, isolated: bool = True) -> None:
    """Grade `jobs` in `pool`, or in a pool of `workers` local threads opened and closed for this call."""
    if pool is not None:
        pool.run(jobs, on_result)
        return
    with GradingPool(workers, isolated=isolated) as own:
        own.run(jobs, on_result)

