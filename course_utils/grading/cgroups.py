"""Memory, process-count and CPU limits for one grading job, from the Linux cgroup controllers.

A job's cgroup holds its kernel and every process the kernel starts, so the memory limit counts all of
their resident memory, files in the job's /tmp and /dev/shm included, the process limit stops a fork
bomb, and the CPU quota (where the `cpu` controller is there) keeps a job to its share of the cores.
Works with cgroup v2 and with v1's separate hierarchies; where `memory` and `pids` cannot be written (an
unprivileged user without delegation), `Cgroups.create` returns None and the kernel falls back to an
address-space limit.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CONTROLLERS = ("memory", "pids")  # required
OPTIONAL = ("cpu",)
CPU_PERIOD_US = 100_000


def _mounts() -> dict[str, Path]:
    """Mount points by controller ("memory", "pids"), or {"unified": path} for cgroup v2."""
    found: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(fields) < 5 or not extra:
            continue
        if extra[0] == "cgroup2":
            found.setdefault("unified", Path(fields[4]))
        elif extra[0] == "cgroup" and len(extra) >= 3:
            for controller in CONTROLLERS + OPTIONAL:
                if controller in extra[2].split(","):
                    found[controller] = Path(fields[4])
    return found


def _own(controller: str) -> str:
    """This process's cgroup path in the hierarchy of `controller` ("" for cgroup v2)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (controller in names.split(",")) if controller else names == "":
            return path.lstrip("/")
    return ""


class Cgroups:
    """The cgroups of one grading run (a folder per job under one parent per run)."""

    def __init__(self, version: int, parents: dict[str, Path]):
        self.version, self.parents = version, parents

    @classmethod
    def create(cls, tag: str) -> "Cgroups | None":
        """A parent cgroup for this run's jobs, or None where the memory and pids controllers cannot be used."""
        mounts = _mounts()
        try:
            if all(c in mounts for c in CONTROLLERS):
                parents = {c: mounts[c] / _own(c) / tag for c in CONTROLLERS}
                for folder in parents.values():
                    folder.mkdir(exist_ok=True)
                for c in OPTIONAL:
                    try:
                        (mounts[c] / _own(c) / tag).mkdir(exist_ok=True)
                        parents[c] = mounts[c] / _own(c) / tag
                    except (KeyError, OSError):
                        pass
                return cls(1, parents)
            if "unified" in mounts:
                return cls._create_v2(mounts["unified"], tag)
        except OSError:
            return None
        return None

    @classmethod
    def _create_v2(cls, mount: Path, tag: str) -> "Cgroups | None":
        for base in (mount / _own(""), mount):
            try:
                available = set((base / "cgroup.controllers").read_text().split())
                if not set(CONTROLLERS) <= available:
                    continue
                wanted = [c for c in CONTROLLERS + OPTIONAL if c in available]
                enabled = set((base / "cgroup.subtree_control").read_text().split())
                if not set(wanted) <= enabled:
                    (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
                parent = base / tag
                parent.mkdir(exist_ok=True)
                (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
                return cls(2, {"unified": parent})
            except OSError:
                continue
        return None

    def job(self, name: str, memory_bytes: int, pids: int, cpus: int) -> "JobCgroup":
        folders = {key: parent / name for key, parent in self.parents.items()}
        for folder in folders.values():
            folder.mkdir(exist_ok=True)
        limits = JobCgroup(self.version, folders)
        limits.set(memory_bytes, pids, cpus)
        return limits

    def remove(self) -> None:
        for folder in self.parents.values():
            for child in folder.iterdir() if folder.is_dir() else []:
                if child.is_dir():
                    _rmdir(child)
            _rmdir(folder)


class JobCgroup:
    """One job's cgroup: its limits, how a process joins it, whether the kernel's OOM killer struck."""

    def __init__(self, version: int, folders: dict[str, Path]):
        self.version, self.folders = version, folders

    def set(self, memory_bytes: int, pids: int, cpus: int) -> None:
        quota = str(cpus * CPU_PERIOD_US)
        if self.version == 2:
            folder = self.folders["unified"]
            (folder / "memory.max").write_text(str(memory_bytes))
            if (folder / "memory.swap.max").exists():
                (folder / "memory.swap.max").write_text("0")
            (folder / "pids.max").write_text(str(pids))
            if (folder / "cpu.max").exists():
                (folder / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
            return
        memory = self.folders["memory"]
        (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():
            (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        (self.folders["pids"] / "pids.max").write_text(str(pids))
        if "cpu" in self.folders:
            (self.folders["cpu"] / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (self.folders["cpu"] / "cpu.cfs_quota_us").write_text(quota)

    def procs_files(self) -> list[str]:
        """Files a process writes its own pid into to join this cgroup (one per hierarchy)."""
        return [str(folder / "cgroup.procs") for folder in self.folders.values()]

    def oom_killed(self) -> bool:
        """True when the kernel's out-of-memory killer ended a process of this job."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        folder = self.folders["unified" if self.version == 2 else "memory"]
        try:
            fields = dict(line.split() for line in (folder / name).read_text().splitlines() if len(line.split()) == 2)
        except OSError:
            return False
        if "oom_kill" in fields:
            return int(fields["oom_kill"]) > 0
        try:
            return int((folder / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError):
            return False

    def remove(self) -> None:
        for folder in self.folders.values():
            _rmdir(folder)


def _rmdir(folder: Path, wait_s: float = 3.0) -> None:
    """Remove an empty cgroup, waiting briefly for its last processes to be reaped."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.rmdir(folder)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
