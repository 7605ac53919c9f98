"""Grade one submission anywhere: its own sandbox and kernel, the referee deciding every test, limits that hold.

`run_job` is what a grading worker runs (a thread on this machine or a Dask worker elsewhere). It needs
only the `GradeJob` it is given, never the instructor's course folder, and returns a `JobResult`: a
score for every graded cell, the executed notebook (safe to open in the formgrader) and the student's
feedback page. The submission's cells run in a sandboxed kernel; each test cell runs in the referee,
in this process, against that kernel (see `referee.py`). A kernel that dies or hangs ends only this
submission's run: the tests before it keep their verdicts, the rest fail with the reason.
"""

from __future__ import annotations

import ast
import importlib
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils as nbgrader_utils

from . import feedback, sandbox
from ..testing import parse
from .client import CellTimeout, KernelClient, KernelLost, Outputs, connection_info
from .referee import docstring, run_test

KERNEL_START_S = 120.0
ADDRESS_SPACE_HEADROOM = 16 * 2**30


@dataclass(frozen=True)
class Limits:
    """What one submission may use: seconds per cell, seconds in all, memory (MiB) and processes of its job."""

    cell_s: int = 300
    submission_s: int = 900
    memory_mb: int = 6144
    processes: int = 128


@dataclass
class GradeJob:
    """Everything needed to grade one submission anywhere: no path into the instructor's course is read."""

    lab: str
    student: str
    submission: bytes  # the submitted notebook file, as the student left it
    release: str  # the student version of the lab (JSON), the skeleton a submission is rebuilt on
    tests: dict[str, str]  # grade_id -> source of each autograded test cell, hidden tests included
    aliases: dict[str, str]  # notebook name -> module (or module:attribute) the tests may use
    limits: Limits
    env: dict[str, str] = field(default_factory=dict)  # COURSE_QUICK, COURSE_DATA_ROOT... for the kernel
    denied: list[str] = field(default_factory=list)  # folders of the grading machine the sandbox must not show
    threads: int = 1  # CPU threads for the kernel's torch and BLAS
    isolated: bool = True  # False only under --no-isolation
    stop_after_failure: bool = False  # mutation testing needs only whether some test fails


@dataclass
class JobResult:
    """What grading one submission produced; `failure` is set when it could not be graded at all."""

    student: str
    grades: list[dict] = field(default_factory=list)  # per graded cell: name, auto_score, max_score, ...
    comments: list[dict] = field(default_factory=list)  # per answer cell: name, auto_comment
    notebook: str | None = None  # the executed notebook (JSON)
    feedback: str = ""  # the feedback page (HTML)
    failure: str | None = None  # "kind: details"
    notes: list[str] = field(default_factory=list)  # "kind: details": limits hit, the kernel lost
    messages: dict[str, str] = field(default_factory=dict)  # grade_id -> why a test failed
    runtime_s: float = 0.0
    worker: str = ""  # which machine/worker graded it
    isolated: bool = True


def nbgrader_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def rebuild(submitted: nbformat.NotebookNode, release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The submission laid out on the release: every graded and locked cell in its original place and order.

    Answer cells come from the student (with the release's nbgrader metadata); test and locked cells come
    from the release, so deleted, edited or reordered tests still run. Cells without a grade_id (the
    student's own, or the lab's plain code) stay after the graded cell they followed, among the graded
    cells the student left in order.
    """
    graded = {nbgrader_id(c): c for c in release.cells if nbgrader_id(c)}
    anchors = _in_order([nbgrader_id(c) for c in submitted.cells if nbgrader_id(c) in graded], list(graded))
    answers, after, anchor = {}, {None: []}, None
    for cell in submitted.cells:
        gid = nbgrader_id(cell)
        if gid in graded:
            anchor = gid if gid in anchors else anchor
            mine = graded[gid]
            if mine.metadata["nbgrader"].get("solution") and gid not in answers:
                make = nbformat.v4.new_code_cell if mine.cell_type == "code" else nbformat.v4.new_markdown_cell
                answers[gid] = make(source=cell.get("source", ""), metadata=dict(mine.metadata))
            continue
        cell.get("metadata", {}).pop("nbgrader", None)  # a graded-looking cell the release lacks earns nothing
        after.setdefault(anchor, []).append(cell)
    cells = list(after[None])
    for gid, cell in graded.items():
        cells += [answers.get(gid, cell), *after.get(gid, [])]
    rebuilt = nbformat.v4.new_notebook(metadata=release.metadata)
    rebuilt.cells = [nbformat.from_dict(dict(c)) for c in cells]
    for index, cell in enumerate(rebuilt.cells):
        cell["id"] = f"cell-{index}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return rebuilt


def _in_order(ids: list[str], order: list[str]) -> set[str]:
    """The longest run of `ids` (not necessarily adjacent) that keeps the order of `order`: cells left in place."""
    rank = [order.index(i) for i in ids]
    best = [[k] for k in range(len(ids))]
    for k in range(len(ids)):
        for j in range(k):
            if rank[j] < rank[k] and len(best[j]) + 1 > len(best[k]):
                best[k] = best[j] + [k]
    return {ids[k] for k in max(best, key=len, default=[])}


def import_aliases(sources: list[str]) -> dict[str, str]:
    """Names bound by import statements in `sources`: {"np": "numpy", "nn": "torch.nn", "tqdm": "tqdm.auto:tqdm"}."""
    found = {}
    for source in sources:
        try:
            tree = parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    found[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name != "*":
                        found[a.asname or a.name] = f"{node.module}:{a.name}"
    return found


def resolve_aliases(aliases: dict[str, str]) -> dict[str, object]:
    """The referee's own modules and objects for the lab's import names (those this machine has)."""
    found = {}
    for name, target in aliases.items():
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
            found[name] = getattr(module, attribute) if attribute else module
        except (ImportError, AttributeError):
            continue
    return found


def defined_names(source: str) -> list[str]:
    """Top-level names a cell defines (functions, classes, assignments)."""
    try:
        tree = parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return names


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def run_job(job: GradeJob) -> JobResult:
    """Grade one submission; always returns, whatever the submission does."""
    start = time.monotonic()
    result = JobResult(job.student, worker=_worker_name(), isolated=job.isolated)
    try:
        submitted = nbformat.reads(job.submission.decode("utf-8"), as_version=4)
        nbformat.validate(submitted)
    except Exception as err:  # not JSON, not a notebook, not UTF-8: nbformat raises many kinds
        result.failure = f"not a valid notebook: {str(err).splitlines()[0][:200] if str(err) else type(err).__name__}"
    if result.failure is None:
        try:
            _grade(job, nbformat.reads(job.release, as_version=4), submitted, result)
        except sandbox.SandboxError as err:
            result.failure = f"sandbox failed: {err}"
        except _KernelStart as err:
            result.failure = f"kernel did not start: {err}"
    if result.failure is not None:
        result.feedback = feedback.failure_page(job.student, job.lab, result.failure)
    result.runtime_s = time.monotonic() - start
    return result


class _KernelStart(RuntimeError):
    """No kernel could be started for this submission (a problem of the grading machine, not of the notebook)."""


def start_kernel(job: GradeJob, attempts: int = 2) -> JobKernel:
    """A ready kernel for `job`. A start that failed is tried again: no code of the submission has run yet, so the
    cause is the grading machine (a busy moment), never the student."""
    for attempt in range(1, attempts + 1):
        try:
            return JobKernel(job)
        except _KernelStart:
            if attempt == attempts:
                raise


class JobKernel:
    """The sandbox, cgroup and kernel of one job, ended together by `close`."""

    def __init__(self, job: GradeJob):
        from .pool import local_resources

        self.resources = resources = local_resources()
        limits = job.limits
        memory = limits.memory_mb * 2**20
        self.box = self.cgroup = self.process = self.client = None
        self.folder = None
        self.closed = threading.Lock()
        resources.running.add(self)
        name = f"job-{secrets.token_hex(6)}"
        try:
            self.cgroup = (resources.cgroups.job(name, memory, limits.processes, job.threads)
                           if resources.cgroups else None)
            if job.isolated:
                data = [job.env[k] for k in ("COURSE_DATA_ROOT",) if os.path.isdir(job.env.get(k, ""))]
                self.box = sandbox.Sandbox(sandbox.read_only_paths(job.denied, data), job.denied, memory)
                home = sandbox.HOME
            else:
                self.folder = Path(tempfile.mkdtemp(prefix="course-grade-"))
                home = str(self.folder)
            key = secrets.token_hex(32)
            request = {
                "holder": self.box.holder if self.box else None,
                "cgroups": self.cgroup.procs_files() if self.cgroup else [],
                "home": home, "connection": connection_info(f"{home}/.kernel/kernel", key), "threads": job.threads,
                # A backstop for one huge allocation (it raises MemoryError instead of ending the kernel); the
                # cgroup holds the real limit. torch maps several GiB of address space it never touches.
                "address_space": memory + ADDRESS_SPACE_HEADROOM,
                "cpu_seconds": limits.submission_s * job.threads + 60, "env": _kernel_env(job, home)}
            try:
                self.process = resources.zygote.fork(request)
            except RuntimeError as err:
                raise _KernelStart(str(err)) from None
            root = f"/proc/{self.process.pid}/root" if self.box else ""
            self.client = KernelClient(f"{root}{home}/.kernel/kernel", key, self.process.pid, self.process.ended,
                                       KERNEL_START_S)
            self.client.wait_ready(KERNEL_START_S)
        except KernelLost as err:
            self.close()
            raise _KernelStart(str(err)) from None
        except BaseException:
            self.close()
            raise

    def lost_reason(self, reason: str) -> str:
        if self.cgroup is not None and self.cgroup.oom_killed():
            return "memory limit: the notebook used more memory than the grader allows and was stopped"
        return reason

    def terminate(self) -> None:
        """Kill the sandbox and every process in it (safe from any thread)."""
        if self.box is not None:
            self.box.close()
        elif self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        """End the kernel, its sandbox and cgroup, once."""
        if not self.closed.acquire(blocking=False):
            return
        self.resources.running.discard(self)
        if self.client is not None:
            self.client.close()
        self.terminate()
        if self.process is not None:
            self.process.close()
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _kernel_env(job: GradeJob, home: str) -> dict[str, str]:
    """The kernel's whole environment: an allowlist, nothing of the instructor's."""
    threads = str(job.threads)
    tmp = "/tmp" if job.isolated else home
    env = {"HOME": home, "TMPDIR": tmp, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": f"{tmp}/matplotlib", "IPYTHONDIR": f"{home}/.ipython",
           "COURSE_CACHE_DIR": f"{tmp}/course-cache", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads, "MALLOC_ARENA_MAX": "2"}
    return {**env, **{k: v for k, v in job.env.items() if k.startswith("COURSE_")}}


def _grade(job: GradeJob, release: nbformat.NotebookNode, submitted: nbformat.NotebookNode,
           result: JobResult) -> None:
    rebuilt = rebuild(submitted, release)
    modules = resolve_aliases(job.aliases)
    sources = {name: c.source for c in rebuilt.cells if c.cell_type == "code"
               and c.metadata.get("nbgrader", {}).get("solution") for name in defined_names(c.source)}
    verdicts = {}
    lost = ""
    kernel = start_kernel(job)
    deadline = time.monotonic() + job.limits.submission_s  # the notebook's own time: from a ready kernel on
    try:
        for index, cell in enumerate(rebuilt.cells):
            if cell.cell_type != "code":
                continue
            gid, where = nbgrader_id(cell), nbgrader_id(cell) or f"cell {index + 1}"
            if not lost and time.monotonic() > deadline:
                lost = (f"time limit: the notebook ran longer than {job.limits.submission_s} s in all; it was stopped "
                        f"before {where}")
            if gid in job.tests:
                if lost:
                    verdicts[gid] = (False, f"not run: {lost}")
                    continue
                budget = min(job.limits.cell_s, max(1.0, deadline - time.monotonic()))
                verdict = run_test(kernel.client, job.tests[gid], gid, modules, sources, budget)
                cell.outputs = verdict.outputs
                verdicts[gid] = (verdict.passed, verdict.message)
                if verdict.kernel_lost:
                    lost = f"{kernel.lost_reason(verdict.kernel_lost)} (during {where})"
                elif job.stop_after_failure and not verdict.passed:
                    lost = f"stopped after the first failed test, {gid}"
                continue
            if lost:
                continue
            outputs = Outputs()
            try:
                kernel.client.execute(cell.source, min(time.monotonic() + job.limits.cell_s, deadline), outputs)
            except CellTimeout:
                outputs.add("error", {"ename": "CellTimeout", "evalue": f"stopped after {job.limits.cell_s} s"})
                result.notes.append(f"cell time limit: {where} ran longer than {job.limits.cell_s} s and was stopped")
            except KernelLost as err:
                lost = f"{kernel.lost_reason(str(err))} (in {where})"
                outputs.add("error", {"ename": "KernelLost", "evalue": lost})
            cell.outputs = outputs.items
            if outputs.truncated:
                result.notes.append(f"output truncated: {where} printed more than the grader keeps")
    finally:
        kernel.close()
    if lost:
        result.notes.append(f"{lost}; the cells after it did not run and their tests earn nothing")
    for cell in rebuilt.cells:
        if cell.cell_type == "code":
            cell.outputs = feedback.safe_outputs(cell.outputs)
    _score(rebuilt, job, verdicts, result)
    result.notebook = nbformat.writes(rebuilt)
    reports = {g["name"]: feedback.TestReport(g["name"], docstring(job.tests[g["name"]]), g["auto_score"],
                                              g["max_score"], verdicts.get(g["name"], (False, ""))[0],
                                              verdicts.get(g["name"], (False, ""))[1])
               for g in result.grades if g["autograded"]}
    result.feedback = feedback.feedback_page(job.lab, job.student, rebuilt, reports, result.notes, job.isolated)


def _score(nb: nbformat.NotebookNode, job: GradeJob, verdicts: dict, result: JobResult) -> None:
    """Scores and comments for every graded cell, as nbgrader's autograde would record them."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        if not gid:
            continue
        if meta.get("grade"):
            points = float(meta.get("points", 0))
            if gid in job.tests:
                passed, message = verdicts.get(gid, (False, "not run"))
                score, manual = (points if passed else 0.0), False
                if not passed:
                    result.messages[gid] = message
            else:
                score, _ = nbgrader_utils.determine_grade(cell)
                manual = score is None
            result.grades.append({"name": gid, "auto_score": score, "max_score": points, "needs_manual_grade": manual,
                                  "autograded": gid in job.tests})
        if meta.get("solution") or meta.get("task"):
            unchanged = meta.get("checksum") == nbgrader_utils.compute_checksum(cell) and not meta.get("task")
            result.comments.append({"name": gid, "auto_comment": "No response." if unchanged else None})
