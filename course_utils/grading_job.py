"""Autograde one submission alone: a private nbgrader course, a sandboxed kernel, time, memory and output limits.

`run_job` is what a grading worker (a local thread or a Dask worker on another machine) runs: it needs
only the `GradeJob` it is given, never the instructor's course folder, and returns a `JobResult`
holding the executed notebook, the scores nbgrader gave and the feedback page. The nbgrader run
itself happens in a long-lived child process (`python -m course_utils.grading_job`, one per worker
thread) that is killed with its kernel when a submission outruns its wall-clock limit.
"""

from __future__ import annotations

import ast
import html
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbgrader.preprocessors import Execute

from . import kernel_fork
from .sandbox import OUTPUT_LIMIT_BYTES, POLICY_ENV, SandboxPolicy, cell_hash

SANDBOX_PREFIX = "course-grade-"
KERNEL_PID_FILE = "kernel.pid"


@dataclass(frozen=True)
class Limits:
    """What one submission may use: seconds per cell, seconds in all, memory of its kernel."""

    cell_s: int = 300
    submission_s: int = 900
    memory_mb: int = 6144


@dataclass
class GradeJob:
    """Everything needed to grade one submission anywhere: no path into the instructor's course is read."""

    lab: str
    student: str
    course_id: str
    submission: bytes  # the submitted notebook file, as the student left it
    release: str  # the student version of the lab (JSON), the skeleton a submission is rebuilt on
    gradebook: bytes  # a SQLite gradebook holding only this lab, made by a fresh release
    tests: dict[str, str]  # grade_id -> source of each autograded test cell, hidden tests included
    aliases: dict[str, str]  # notebook name -> module (or module:attribute) the tests may use
    modules: list[str]  # submodules the tests reach through an alias (`cu.models` -> course_utils.models)
    limits: Limits
    env: dict[str, str] = field(default_factory=dict)  # COURSE_QUICK, COURSE_DATA_ROOT... for the kernel
    denied: list[str] = field(default_factory=list)  # folders of this machine the kernel must not read
    readable: list[str] = field(default_factory=list)  # folders inside those that it may read (course_utils)
    threads: int = 1  # CPU threads for the kernel's torch and BLAS


@dataclass
class JobResult:
    """What grading one submission produced; `failure` is set when it could not be graded at all."""

    student: str
    grades: list[dict] = field(default_factory=list)  # per graded cell: name, auto_score, max_score, ...
    comments: list[dict] = field(default_factory=list)  # per answer cell: name, auto_comment
    notebook: str | None = None  # the executed notebook (JSON)
    feedback: str = ""  # the feedback page (HTML)
    failure: str | None = None  # "kind: details"
    notes: list[str] = field(default_factory=list)  # "kind: details" for limits hit in single cells
    runtime_s: float = 0.0
    worker: str = ""  # which machine/worker graded it
    log: str = ""  # nbgrader's log when the submission could not be graded


def nbgrader_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def rebuild(submitted: nbformat.NotebookNode, release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The submission laid out on the release: every graded and locked cell in its original place and order.

    Answer cells come from the student (with the release's nbgrader metadata); test and locked cells come
    from the release, and nbgrader then swaps in the hidden tests, so deleted, edited or reordered tests
    still run. Cells without a grade_id (the student's own, or the lab's plain code) stay after the graded
    cell they followed, among the graded cells the student left in order.
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
    """Names bound by import statements in `sources`: {"np": "numpy", "nn": "torch.nn", "check_close": ...}."""
    found = {}
    for source in sources:
        try:
            tree = ast.parse(source)
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


def submodules_used(sources: list[str], aliases: dict[str, str]) -> list[str]:
    """Submodules reached as `alias.name` in `sources` where `alias` names a package (`cu.plots`)."""
    found = set()
    for alias, target in aliases.items():
        if ":" in target:
            continue
        for source in sources:
            found |= {f"{target}.{name}" for name in re.findall(rf"\b{re.escape(alias)}\.(\w+)", source)}
    return sorted(name for name in found if _is_module(name))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def classify(nb: nbformat.NotebookNode, limits: Limits) -> list[str]:
    """Notes on cells that hit a limit or broke a rule, read from the executed notebook's outputs."""
    notes = []
    for index, cell in enumerate(nb.cells):
        name = nbgrader_id(cell) or f"cell {index + 1}"
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and "[output truncated" in out.get("text", ""):
                notes.append(f"output truncated: {name} printed more than the grader keeps")
            if out.get("output_type") != "error":
                continue
            ename, evalue = out.get("ename", ""), str(out.get("evalue", ""))
            if ename in {"KeyboardInterrupt", "CellTimeoutError"}:
                notes.append(f"cell time limit: {name} ran longer than {limits.cell_s} s and was stopped")
            elif ename == "MemoryError" or "can't allocate memory" in evalue or "not enough memory" in evalue:
                notes.append(f"memory limit: {name} needed more than {limits.memory_mb} MiB")
            elif ename == "SandboxError":
                notes.append(f"forbidden action: {name}: {evalue}")
            elif ename == "TamperError":
                notes.append(f"test tampering: {name}: {evalue}")
    return list(dict.fromkeys(notes))


def failure_page(student: str, lab: str, failure: str) -> str:
    """A feedback page for a submission that could not be graded, saying why."""
    kind, _, detail = failure.partition(": ")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(lab)} feedback</title></head>"
            f"<body><h1>{html.escape(lab)}: feedback for {html.escape(student)}</h1>"
            f"<p><strong>Your submission could not be graded ({html.escape(kind)}).</strong></p>"
            f"<p>{html.escape(detail)}</p><p>It earns no autograded points. Fix the problem and submit again, "
            "or ask your instructor.</p></body></html>")


def _notes_cell(notes: list[str]) -> nbformat.NotebookNode:
    lines = "\n".join(f"- {note}" for note in notes)
    return nbformat.v4.new_markdown_cell(f"**Notes from the grader**\n\n{lines}")


def _worker_name() -> str:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def run_job(job: GradeJob) -> JobResult:
    """Grade one submission in a fresh temporary folder; always returns, whatever the submission does."""
    start = time.perf_counter()
    result = JobResult(job.student, worker=_worker_name())
    try:
        submitted = nbformat.reads(job.submission.decode("utf-8"), as_version=4)
        nbformat.validate(submitted)
    except Exception as err:  # not JSON, not a notebook, not UTF-8: nbformat raises many kinds
        result.failure = f"not a valid notebook: {str(err).splitlines()[0][:200]}"
    if result.failure is None:
        with tempfile.TemporaryDirectory(prefix=SANDBOX_PREFIX) as tmp:
            _grade_in(Path(tmp), job, submitted, result)
    if result.failure is not None:
        result.feedback = failure_page(job.student, job.lab, result.failure)
    result.runtime_s = time.perf_counter() - start
    return result


def _grade_in(tmp: Path, job: GradeJob, submitted: nbformat.NotebookNode, result: JobResult) -> None:
    course, scratch = tmp / "course", tmp / "scratch"
    home = course / "autograded" / job.student / job.lab
    folder = course / "submitted" / job.student / job.lab
    for path in (folder, home, scratch / "tmp", scratch / "ipython", tmp / "jupyter" / "kernels" / "python3"):
        path.mkdir(parents=True)
    (course / "gradebook.db").write_bytes(job.gradebook)
    nbformat.write(rebuild(submitted, nbformat.reads(job.release, as_version=4)), folder / f"{job.lab}.ipynb")
    (tmp / "jupyter" / "kernels" / "python3" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, kernel_fork.__file__, "-f", "{connection_file}"],
        "display_name": "Python 3 (grading sandbox)", "language": "python"}))
    policy = SandboxPolicy(
        home=str(home), writable=[str(scratch)], readable=job.readable,
        denied=[str(course), tempfile.gettempdir(), *job.denied],
        memory_bytes=job.limits.memory_mb * 2**20, cpu_seconds=job.limits.submission_s * job.threads + 60,
        test_hashes=[cell_hash(s) for s in job.tests.values()], aliases=job.aliases, modules=job.modules,
        pid_file=str(scratch / KERNEL_PID_FILE))
    env = {**job.env, POLICY_ENV: policy.to_env(), "JUPYTER_PATH": str(tmp / "jupyter"),
           "IPYTHONDIR": str(scratch / "ipython"), "TMPDIR": str(scratch / "tmp"), "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": str(job.threads), "MKL_NUM_THREADS": str(job.threads), "MALLOC_ARENA_MAX": "2"}
    (tmp / "job.json").write_text(json.dumps({"lab": job.lab, "student": job.student, "course_id": job.course_id,
                                              "limits": asdict(job.limits), "env": env}))
    finished = _server().grade(tmp, job.limits.submission_s)
    if not finished:
        result.failure = (f"time limit: grading took longer than {job.limits.submission_s} s in all "
                          "(a cell that never ends, or a very slow notebook)")
        return
    out = tmp / "result.json"
    if not out.is_file():
        result.failure = ("grader crashed: the grading process ended while running this notebook "
                          "(a flood of output, or memory)")
        return
    for key, value in json.loads(out.read_text()).items():
        setattr(result, key, value)


class _Server:
    """A long-lived `python -m course_utils.grading_job` process that grades one folder at a time.

    It keeps nbgrader imported between submissions; a submission that outruns its limit takes the
    process (and its kernel) down with it, and the next submission starts a fresh one.
    """

    def __init__(self):
        self.process: subprocess.Popen | None = None

    def grade(self, tmp: Path, timeout: float) -> bool:
        """Grade the job folder `tmp`; False when it did not finish within `timeout` seconds."""
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "course_utils.grading_job", str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, start_new_session=True, text=True, bufsize=1)
        try:
            self.process.stdin.write(f"{tmp}\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self.process = None
            return True  # no result.json: reported as a crash
        deadline = time.monotonic() + timeout
        stdout = self.process.stdout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([stdout], [], [], left)[0]:
                self.stop(tmp / "scratch" / KERNEL_PID_FILE)
                return False
            line = stdout.readline()
            if not line:  # the process died
                self.stop(tmp / "scratch" / KERNEL_PID_FILE)
                return True
            if line.strip() == f"done {tmp}":
                return True

    def stop(self, kernel_pid_file: Path) -> None:
        """Kill the process and the kernel (each leads its own process group)."""
        pids = [self.process.pid]
        if kernel_pid_file.is_file():
            pids.append(int(kernel_pid_file.read_text() or 0))
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
        self.process.wait()
        self.process = None


_servers = threading.local()


def _server() -> _Server:
    """This thread's grading process (each worker thread grades one submission at a time)."""
    if not hasattr(_servers, "server"):
        _servers.server = _Server()
    return _servers.server


_current: dict[str, Path] = {}  # the job folder this grading process is working on


def _exit_with_parent(parent: int) -> None:
    """End this grading process, and the kernel it runs, as soon as the process that started it is gone."""
    while os.getppid() == parent:
        time.sleep(1)
    pid_file = _current.get("tmp", Path("/nonexistent")) / "scratch" / KERNEL_PID_FILE
    if pid_file.is_file():
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError):
            pass
    os._exit(1)


def serve(parent: int, idle_s: float = 600) -> None:
    """Grade each job folder named on stdin, answering `done FOLDER`; exit on EOF, after `idle_s` idle, or when
    the process `parent` that started this one is gone."""
    base_env = dict(os.environ)
    zygote = _Zygote()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    while select.select([sys.stdin], [], [], idle_s)[0]:
        line = sys.stdin.readline()
        if not line:
            return
        tmp = _current["tmp"] = Path(line.strip())
        env = json.loads((tmp / "job.json").read_text())["env"]
        os.environ.clear()
        os.environ.update({**base_env, **zygote.env(), **env})
        tempfile.tempdir = None  # read TMPDIR afresh: each job has its own
        try:
            _child(tmp)
        except Exception as err:  # reported to the driver as this submission's failure, then keep serving
            (tmp / "result.json").write_text(json.dumps({"failure": f"nbgrader failed: {err}"[:300]}))
        print(f"done {tmp}", flush=True)


class _Zygote:
    """This grading process's kernel zygote (see `kernel_fork`), started with it and restarted once if it dies.

    Linux only: forking a process that has loaded torch is not safe on macOS, and Windows cannot fork.
    """

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.path = ""
        self.starts = 0
        self._start()

    def _start(self) -> None:
        if self.path:  # a zygote that died leaves its socket behind
            shutil.rmtree(Path(self.path).parent, ignore_errors=True)
        self.process, self.path = None, ""
        if not sys.platform.startswith("linux") or self.starts >= 2:
            return  # kernels start the ordinary way
        self.starts += 1
        self.path = str(Path(tempfile.mkdtemp(prefix="course-zygote-")) / "zygote.sock")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "course_utils.kernel_fork", self.path, str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})

    def env(self) -> dict[str, str]:
        """What the next kernel's stand-in needs to find a live zygote (nothing when there is none)."""
        if self.process is not None and self.process.poll() is not None:
            self._start()
        return {kernel_fork.SOCKET_ENV: self.path} if self.path else {}


def _child(tmp: Path) -> None:
    """Run nbgrader's autograde and feedback in the private course at `tmp/course`; write `tmp/result.json`."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.converters.autograde import Autograde
    from traitlets.config import Config

    spec = json.loads((tmp / "job.json").read_text())
    lab, student, limits = spec["lab"], spec["student"], Limits(**spec["limits"])
    _limit_own_memory(limits)
    course = tmp / "course"
    config = Config()
    config.CourseDirectory.course_id = spec["course_id"]
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.Execute.timeout = limits.cell_s
    config.Execute.interrupt_on_timeout = True
    config.Execute.startup_timeout = 120
    config.Autograde.autograde_preprocessors = [
        CappedExecute if pp is Execute else pp for pp in Autograde.autograde_preprocessors.default()]
    coursedir = CourseDirectory(config=config, root=str(course))
    api = NbGraderAPI(coursedir=coursedir, config=config)
    answer = {"grades": [], "comments": [], "notes": [], "failure": None}
    outcome = api.autograde(lab, student, force=True, create=True)
    graded = course / "autograded" / student / lab / f"{lab}.ipynb"
    if not outcome.get("success") or not graded.is_file():
        answer["failure"] = _explain(outcome)
        answer["log"] = (outcome.get("log") or "")[-20_000:]
    else:
        nb = nbformat.read(graded, as_version=4)
        answer["notes"] = classify(nb, limits)
        if answer["notes"]:
            nb.cells.insert(0, _notes_cell(answer["notes"]))
            nbformat.write(nb, graded)
        answer["notebook"] = graded.read_text()
        feedback = api.generate_feedback(lab, student, force=True)
        page = course / "feedback" / student / lab / f"{lab}.html"
        answer["feedback"] = page.read_text() if feedback.get("success") and page.is_file() else ""
        with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
            notebook = gb.find_submission_notebook(lab, lab, student)
            for grade in notebook.grades:
                answer["grades"].append({
                    "name": grade.name, "auto_score": grade.auto_score, "max_score": grade.max_score,
                    "needs_manual_grade": grade.needs_manual_grade, "cell_type": grade.cell.cell_type,
                    "autograded": grade.cell.cell_type == "code" and not getattr(grade.cell, "solution", False)})
            answer["comments"] = [{"name": c.name, "auto_comment": c.auto_comment} for c in notebook.comments]
    (tmp / "result.json").write_text(json.dumps(answer))


def _explain(outcome: dict) -> str:
    """A one-line reason from a failed nbgrader run's log."""
    log = (outcome.get("log") or "") + (outcome.get("error") or "")
    if "UnresponsiveKernelError" in log or "DeadKernelError" in log or "Kernel died" in log:
        return "kernel died: the notebook's Python process ended abruptly (os._exit, a crash, or out of memory)"
    if "CellTimeoutError" in log:
        return "time limit: a cell ran past the limit per cell and did not stop when interrupted"
    errors = [line.strip() for line in log.splitlines() if "Error" in line.split(":")[0] and
              "NbGraderException" not in line]
    return f"nbgrader failed: {(errors[-1] if errors else log.strip()[-300:] or 'no message')[:300]}"


def _limit_own_memory(limits: Limits) -> None:
    """Keep the nbgrader child itself bounded too, so a flood of output cannot take the machine down."""
    try:
        import resource
        cap = 2 * limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ImportError, ValueError, OSError):
        pass


class CappedExecute(Execute):
    """nbgrader's Execute, keeping at most OUTPUT_LIMIT_BYTES of output per cell as the outputs arrive."""

    def output(self, outs, msg, display_id, cell_index):
        used = self.__dict__.setdefault("_output_bytes", {})
        used[cell_index] = used.get(cell_index, 0) + len(json.dumps(msg.get("content", {})))
        if used[cell_index] <= OUTPUT_LIMIT_BYTES:
            return super().output(outs, msg, display_id, cell_index)
        if not any("[output truncated" in o.get("text", "") for o in outs):
            outs.append(nbformat.v4.new_output("stream", name="stderr", text=(
                f"[output truncated: the grader keeps the first {OUTPUT_LIMIT_BYTES:,} characters of a cell]\n")))
        return None


if __name__ == "__main__":
    serve(int(sys.argv[1]))
