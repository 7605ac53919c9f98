"""The processes a grading worker keeps for its jobs: one kernel zygote, a parent cgroup, the kernels running.

They belong to one worker process, are made on first use and end with `close_local_resources`: when the
pool closes on this machine, when a cluster worker stops, or when a run is interrupted (`stop_running`).
A worker that is reused across runs keeps exactly one zygote.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from .cgroups import Cgroups
from .sandbox import check_isolation
from ..kernel.zygote import Zygote


@dataclass
class Resources:
    """What the jobs of one worker process share: a zygote, a parent cgroup where the machine has one, and the
    jobs' kernels still running (ended with the resources, so that an interrupted run leaves nothing)."""

    zygote: Zygote
    cgroups: Cgroups | None
    running: set = field(default_factory=set)

    def stop_running(self) -> None:
        """Kill every job's kernel: each job sees its kernel gone, finishes, and cleans up the rest."""
        for kernel in list(self.running):
            kernel.terminate()

    def close(self) -> None:
        self.stop_running()
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


def stop_running() -> None:
    """Kill the kernels of the jobs this process is running now (an interrupted run), keeping the zygote."""
    with _lock:
        resources = _resources
    if resources is not None:
        resources.stop_running()


def worker_check(isolated: bool) -> str | None:
    """Run on each worker before a grading run: why this worker cannot grade as asked, or None. A worker that
    can grade starts its zygote now, so that it imports torch while the run is being prepared."""
    problem = check_isolation() if isolated else None
    if problem is None:
        local_resources()
    return problem
