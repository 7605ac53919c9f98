"""Grade one submission anywhere: its own sandbox and kernel, the referee deciding every test, limits that hold.

`run_job` is what a grading worker runs (a thread on this machine or a Dask worker elsewhere). It needs
only the `GradeJob` it is given, never the instructor's course folder, and returns a `JobOutput`: the
submission's `SubmissionOutcome` (a `TestOutcome` for every graded cell, the notes of its run, or the
`Failure` that kept it from being graded) and the executed notebook (safe to open in the formgrader).
The submission's cells run in a sandboxed kernel; each test cell runs in the referee, in this process,
against that kernel (see `referee.py`). `run_cells` is the one loop that runs cells and tests, for grading,
validation and mutation testing alike. A kernel that dies or hangs ends only this submission's run: the
tests before it keep their verdicts, the rest fail with the reason.
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

from . import sandbox
from ..testing import parse
from .client import CellTimeout, KernelClient, KernelLost, Outputs, connection_info
from .feedback import safe_notebook
from .referee import Verdict, docstring, run_test
from .resources import local_resources
from .results import Failure, FailureKind, Note, NoteKind, SubmissionOutcome, TestOutcome

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
class JobOutput:
    """What grading one submission produced: its outcome, and the executed notebook (JSON) when its cells ran."""

    outcome: SubmissionOutcome
    notebook: str | None = None


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


def run_job(job: GradeJob) -> JobOutput:
    """Grade one submission; always returns, whatever the submission does. An exception of the grading machinery
    itself (a cgroup that cannot be written, a bug) fails the submission as the machine's fault: graded again."""
    start = time.monotonic()
    outcome = SubmissionOutcome(job.lab, job.student, worker=_worker_name(), isolated=job.isolated)
    notebook = None
    try:
        notebook = _grade(job, outcome)
    except sandbox.SandboxError as err:
        outcome.failure = Failure(FailureKind.SANDBOX, str(err))
    except _KernelStart as err:
        outcome.failure = Failure(FailureKind.KERNEL_START, str(err))
    except Exception as err:
        outcome.failure = Failure(FailureKind.GRADER_ERROR, f"{type(err).__name__}: {err}"[:500])
    if outcome.failure is not None:
        outcome.tests, notebook = [], None
    outcome.runtime_s = time.monotonic() - start
    return JobOutput(outcome, notebook)


def worker_lost(job: GradeJob, err: BaseException) -> JobOutput:
    """The output of a job whose worker was lost before it answered: the machine's failure, graded again."""
    failure = Failure(FailureKind.WORKER_LOST, f"{type(err).__name__}: {err}"[:500])
    return JobOutput(SubmissionOutcome(job.lab, job.student, failure=failure, isolated=job.isolated))


def read_notebook(data: bytes) -> nbformat.NotebookNode | Failure:
    """The submitted notebook, or why it is not one."""
    try:
        submitted = nbformat.reads(data.decode("utf-8"), as_version=4)
        nbformat.validate(submitted)
    except Exception as err:  # not JSON, not a notebook, not UTF-8: nbformat raises many kinds
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        return Failure(FailureKind.NOT_A_NOTEBOOK, reason)
    return submitted


def wrong_lab(submitted: nbformat.NotebookNode, release: nbformat.NotebookNode, lab: str) -> Failure | None:
    """Why `submitted` is not a notebook of `lab`, if it holds none of the release's graded cells."""
    ours = {nbgrader_id(c) for c in release.cells} - {None}
    theirs = [gid for gid in (nbgrader_id(c) for c in submitted.cells) if gid]
    if not ours or ours & set(theirs):
        return None
    if theirs:
        shown = ", ".join(gid[:40] for gid in theirs[:3]) + (", ..." if len(theirs) > 3 else "")
        return Failure(FailureKind.WRONG_LAB, f"its graded cells ({shown}) belong to another lab: none of the "
                                              f"{len(ours)} graded cells of {lab} is in it")
    return Failure(FailureKind.WRONG_LAB, f"it holds none of the {len(ours)} graded cells of {lab}")


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
                self.box = sandbox.Sandbox(sandbox.read_only_paths(data), job.denied, memory)
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

    def lost_note(self, reason: str, where: str) -> Note:
        """Why the kernel can run nothing more: its memory limit, or what the client saw."""
        if self.cgroup is not None and self.cgroup.oom_killed():
            return Note(NoteKind.MEMORY_LIMIT, f"the notebook used more memory than the grader allows and was "
                                               f"stopped ({where})")
        return Note(NoteKind.KERNEL_DIED, f"{reason} ({where})")

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


@dataclass
class Executed:
    """What running cells in one kernel left: each test's verdict, the notes of the run, and why it stopped."""

    verdicts: dict[str, Verdict] = field(default_factory=dict)
    not_run: set[str] = field(default_factory=set)  # tests after the point where the run stopped
    notes: list[Note] = field(default_factory=list)
    stopped: Note | None = None  # why the cells after some point did not run

    @property
    def failed(self) -> bool:
        """Some test failed or did not run, or a cell ran past its time."""
        return (any(not v.passed for v in self.verdicts.values()) or bool(self.not_run)
                or any(n.kind in (NoteKind.CELL_TIMEOUT, NoteKind.TIME_LIMIT) for n in self.notes))


def answer_sources(cells: list) -> dict[str, str]:
    """name -> source of the answer cell that defines it (the referee shows it in messages and checks calls)."""
    return {name: c.source for c in cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
            for name in defined_names(c.source)}


def run_cells(kernel: JobKernel, job: GradeJob, cells: list, deadline: float, stop_after_failure: bool = False,
              modules: dict[str, object] | None = None, notebook: list | None = None) -> Executed:
    """Run `cells` in order in `kernel`, each test cell in the referee; outputs are left on the cells.

    Runs until `deadline` (then the rest of the tests fail, not run), the kernel is lost, or, with
    `stop_after_failure`, a test fails or a cell runs past its time. `notebook` (default `cells`) holds the
    answer cells whose sources the referee may read.
    """
    modules = resolve_aliases(job.aliases) if modules is None else modules
    sources = answer_sources(cells if notebook is None else notebook)
    done = Executed()
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        gid = nbgrader_id(cell)
        where = gid or f"cell {index + 1}"
        if done.stopped is None and time.monotonic() > deadline:
            done.stopped = Note(NoteKind.TIME_LIMIT, f"the notebook ran longer than {job.limits.submission_s} s in "
                                                     f"all; it was stopped before {where}")
        if gid in job.tests:
            if done.stopped is not None:
                done.not_run.add(gid)
                done.verdicts[gid] = Verdict(False, f"not run: {done.stopped}")
                continue
            budget = min(job.limits.cell_s, max(1.0, deadline - time.monotonic()))
            verdict = run_test(kernel.client, job.tests[gid], gid, modules, sources, budget)
            cell.outputs = verdict.outputs
            done.verdicts[gid] = verdict
            if verdict.kernel_lost:
                done.stopped = kernel.lost_note(verdict.kernel_lost, f"during {where}")
            elif stop_after_failure and not verdict.passed:
                done.stopped = Note(NoteKind.STOPPED, f"at {gid}")
            continue
        if done.stopped is not None:
            continue
        outputs = Outputs()
        try:
            kernel.client.execute(cell.source, min(time.monotonic() + job.limits.cell_s, deadline), outputs)
        except CellTimeout:
            outputs.add("error", {"ename": "CellTimeout", "evalue": f"stopped after {job.limits.cell_s} s"})
            timeout = Note(NoteKind.CELL_TIMEOUT, f"{where} ran longer than {job.limits.cell_s} s and was stopped")
            done.notes.append(timeout)
            if stop_after_failure:
                done.stopped = timeout
        except KernelLost as err:
            done.stopped = kernel.lost_note(str(err), f"in {where}")
            outputs.add("error", {"ename": "KernelLost", "evalue": str(done.stopped)})
        cell.outputs = outputs.items
        if outputs.truncated or outputs.dropped_count:
            done.notes.append(Note(NoteKind.OUTPUT_TRUNCATED, f"{where} printed more than the grader keeps"))
    if done.stopped is not None and done.stopped not in done.notes:
        done.notes.append(Note(done.stopped.kind, f"{done.stopped.detail}; the cells after it did not run and their "
                                                  "tests earn nothing"))
    return done


def _grade(job: GradeJob, outcome: SubmissionOutcome) -> str | None:
    """Grade the job's submission into `outcome`; the executed notebook (JSON), or None when it could not run."""
    submitted = read_notebook(job.submission)
    release = nbformat.reads(job.release, as_version=4)
    if isinstance(submitted, Failure):
        outcome.failure = submitted
        return None
    outcome.failure = wrong_lab(submitted, release, job.lab)
    if outcome.failure is not None:
        return None
    rebuilt = rebuild(submitted, release)
    kernel = start_kernel(job)
    deadline = time.monotonic() + job.limits.submission_s  # the notebook's own time: from a ready kernel on
    try:
        done = run_cells(kernel, job, rebuilt.cells, deadline, job.stop_after_failure)
    finally:
        kernel.close()
    outcome.notes += done.notes
    outcome.tests = scores(rebuilt, job.tests, done)
    return nbformat.writes(safe_notebook(rebuilt))  # bounded and inert: the formgrader and the page show it


def scores(nb: nbformat.NotebookNode, tests: dict[str, str], done: Executed) -> list[TestOutcome]:
    """An outcome for every graded cell: autograded tests from their verdicts, written answers as nbgrader scores
    them (0 when left as released, None until a person grades them)."""
    found = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        if not gid or not meta.get("grade"):
            continue
        points = float(meta.get("points", 0))
        if gid in tests:
            verdict = done.verdicts.get(gid, Verdict(False, "not run"))
            found.append(TestOutcome(gid, points, points if verdict.passed else 0.0, checks=docstring(tests[gid]),
                                     message="" if verdict.passed else verdict.message,
                                     ran=gid in done.verdicts and gid not in done.not_run))
        else:
            score, _ = nbgrader_utils.determine_grade(cell)
            found.append(TestOutcome(gid, points, score, autograded=False))
    return found


def unanswered(nb: nbformat.NotebookNode) -> set[str]:
    """The answer cells of a graded notebook left as released (nbgrader's "No response.")."""
    return {nbgrader_id(c) for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
            and not c.metadata["nbgrader"].get("task")
            and c.metadata["nbgrader"].get("checksum") == nbgrader_utils.compute_checksum(c)}
