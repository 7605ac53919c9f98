"""Where grading jobs run: a `GradingPool` is one set of Dask workers (local threads, or a running cluster) for
as long as a `with` block lasts. `course grade`, `course validate` and `course demo` open one for all their
labs. The processes each worker grades with live in `resources.py` and end with the pool on this machine, or
with the worker on a cluster (`GradingPlugin.teardown`).
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

from .course import CourseError
from .jobs import GradeJob, JobOutput, run_job, worker_lost
from .resources import close_local_resources, stop_running, worker_check

PLUGIN = "course-grading"


@contextmanager
def quiet_distributed(level: int = logging.ERROR) -> Iterator[None]:
    """Hold the stream handlers of distributed's logging at `level` while the block runs.

    LocalCluster's own `silence_logs` ends when the cluster has closed, before its event loop stops; the tasks the
    loop cancels as it stops can still log (an INFO "Batched Comm Closed" with a CommClosedError traceback), so a
    pool stays quiet until its loop has stopped.
    """
    handlers = [h for h in logging.getLogger("distributed").handlers if isinstance(h, logging.StreamHandler)]
    before = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(max(level, handler.level))
    try:
        yield
    finally:
        for handler, old in zip(handlers, before):
            handler.setLevel(old)


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

        self.scheduler, self.isolated = scheduler, isolated
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._quiet = ExitStack()
        self._quiet.enter_context(quiet_distributed())
        try:
            if scheduler:
                try:
                    self.client = Client(scheduler, timeout="20s")
                except OSError as err:
                    raise CourseError(f"Cannot reach the Dask scheduler at {scheduler}: {err}") from None
                self.cluster = None
            else:
                self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=False,
                                            dashboard_address=":0", silence_logs=False)
                self.client = Client(self.cluster)
        except BaseException:
            self._quiet.close()
            raise
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

    def run(self, jobs: dict[str, GradeJob], on_result: Callable[[str, JobOutput], None]) -> None:
        """Grade `jobs` (key -> job) in parallel, calling `on_result(key, output)` as each one finishes; a job whose
        worker was lost comes back as the machine's failure (`worker_lost`)."""
        self.map(run_job, jobs, on_result, lambda key, err: worker_lost(jobs[key], err))

    def map(self, func: Callable, tasks: dict[str, object], on_result: Callable[[str, object], None],
            on_error: Callable[[str, Exception], object]) -> None:
        """Run `func(task)` for every task in parallel; `on_result(key, value)` as each finishes (with
        `on_error(key, error)`'s value when the worker running it was lost). Interrupted (Ctrl-C, or an exception
        out of `on_result`), it cancels what has not started and kills the kernels of what has."""
        from distributed import as_completed

        futures = {self.client.submit(func, task, key=f"{func.__name__}-{key}-{os.urandom(4).hex()}", pure=False,
                                      retries=0): key for key, task in tasks.items()}
        finished = False
        try:
            for future in as_completed(futures):
                key = futures[future]
                try:
                    value = future.result()
                except Exception as err:
                    value = on_error(key, err)
                on_result(key, value)
            finished = True
        finally:
            for future in futures:
                future.cancel()
            if not finished:
                self.stop_running()

    def stop_running(self) -> None:
        """Kill the kernels of the jobs the workers are running now; the workers and their zygotes stay."""
        try:
            self.client.run(stop_running)
        except Exception:  # a worker already gone has nothing left running
            stop_running()

    def close(self) -> None:
        """Stop the workers; on this machine, end the zygote and the cgroups too. Quiet until the loop has stopped
        (`cluster.close()` returns after it)."""
        try:
            self.client.close()
        finally:
            try:
                if self.cluster is not None:
                    self.cluster.close()
                    close_local_resources()
            finally:
                self._quiet.close()

    def __enter__(self) -> "GradingPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
