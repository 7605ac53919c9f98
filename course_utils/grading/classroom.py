"""Autograde a whole class: submissions graded in parallel, results written by one writer, runs resumable.

`grade_lab` reads each submission (`submissions.read_submission`), builds one self-contained `GradeJob` per
changed one, hands the jobs to a `GradingPool` (local threads, or a Dask cluster), and as each outcome comes
back records it: the nbgrader gradebook (with the late penalty), `autograded/`, the feedback page and the
outcome under `grading/<lab>/state/`, together or not at all. Every submission ends with a status: graded,
missing, not a notebook, wrong lab, unsafe, or not graded because of the machine (graded again by the next
run); one that was not graded has no grade in the gradebook. Ctrl-C or a hang-up stops the run between two
records (`GradingInterrupted`); a second run of the same lab is refused while one holds its lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import signal
import tempfile
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from tqdm.auto import tqdm

from ..runtime import QUICK_ENV
from .course import Course, CourseError
from .export import state_folder
from .feedback import feedback_page
from .handback import late_penalty, with_hand_grades
from .jobs import GradeJob, JobOutput, Limits, import_aliases, nbgrader_id, unanswered
from .pool import GradingPool
from .results import GradingInterrupted, Late, NoteKind, Status, SubmissionOutcome
from .submissions import read_submission

DATA_ENV = "COURSE_DATA_ROOT"
LOCK_FILE = "grading.lock"
EXTENSIONS_FILE = "extensions.json"


@dataclass
class LabBundle:
    """What every job of one lab shares: the release, its tests (hidden parts included) and its import names."""

    lab: str
    release: str
    tests: dict[str, str]
    aliases: dict[str, str]
    order: list[str]  # autograded test ids in notebook order

    def fingerprint(self, limits: Limits, env: dict[str, str], isolated: bool) -> str:
        blob = json.dumps([self.release, self.tests, asdict(limits), sorted(env.items()), isolated], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def lab_bundle(course: Course, lab: str) -> LabBundle:
    """Release `lab` afresh into a scratch course and keep what a grading job needs from it."""
    with tempfile.TemporaryDirectory(prefix=f"course-bundle-{lab}-") as tmp:
        fresh = Course.copy_of(course.root, Path(tmp), [lab])
        fresh.release(lab)
        release = fresh.release_notebook(lab).read_text()
        source = nbformat.read(fresh.source_notebook(lab), as_version=4)
    return bundle_from(lab, source, release)


def bundle_from(lab: str, source: nbformat.NotebookNode, release: str) -> LabBundle:
    """The bundle of a lab whose source notebook and release (JSON) are at hand."""
    tests = {nbgrader_id(c): c.source for c in source.cells if c.cell_type == "code" and nbgrader_id(c)
             and c.metadata["nbgrader"].get("grade") and not c.metadata["nbgrader"].get("solution")}
    plain = [c.source for c in source.cells if c.cell_type == "code" and not c.metadata.get("nbgrader", {}).get(
        "solution")]
    return LabBundle(lab, release, tests, import_aliases(plain), list(tests))


def _check_gradebook(course: Course, bundle: LabBundle) -> None:
    """The course gradebook must hold `lab` with the graded cells of the current source."""
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        try:
            notebook = gb.find_notebook(bundle.lab, bundle.lab)
        except MissingEntry:
            raise CourseError(f"The gradebook has no {bundle.lab}: run `course release {bundle.lab}` first.") from None
        known = {c.name for c in notebook.grade_cells}
    missing = set(bundle.tests) - known
    if missing:
        raise CourseError(f"The gradebook's {bundle.lab} lacks tests {', '.join(sorted(missing))}: the source changed "
                          f"since the release; run `course release {bundle.lab}`.")


def kernel_env() -> dict[str, str]:
    """Settings the grading kernels must see on every machine (the data folder made absolute)."""
    env = {k: os.environ[k] for k in (QUICK_ENV, DATA_ENV) if k in os.environ}
    if DATA_ENV in env:
        env[DATA_ENV] = str(Path(env[DATA_ENV]).resolve())
    return env


def make_job(course: Course, bundle: LabBundle, student: str, submission: bytes, limits: Limits,
             pool: GradingPool) -> GradeJob:
    """The self-contained job that grades `submission` as `student`'s work on the bundle's lab."""
    return GradeJob(lab=bundle.lab, student=student, submission=submission, release=bundle.release,
                    tests=bundle.tests, aliases=bundle.aliases, limits=limits, env=kernel_env(),
                    denied=[str(course.root)], threads=pool.threads, isolated=pool.isolated)


def lab_folder(course: Course, lab: str) -> Path:
    """`grading/<lab>/`: the lab's summary, lock, extensions and stored outcomes."""
    return course.root / "grading" / lab


def _fingerprint(lab_print: str, content: bytes, timestamp: datetime | None) -> str:
    stamp = b"" if timestamp is None else timestamp.isoformat().encode()
    return hashlib.sha256(lab_print.encode() + hashlib.sha256(content).digest() + stamp).hexdigest()


def default_limits(course: Course) -> Limits:
    return Limits(cell_s=int(course.config.ExecutePreprocessor.get("timeout", Limits.cell_s)))


@contextlib.contextmanager
def lab_lock(course: Course, lab: str):
    """Hold `grading/<lab>/grading.lock` for a run; refuse clearly, naming the holder, while another run has it."""
    folder = lab_folder(course, lab)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise CourseError(f"{lab} is being graded by another `course grade` (process {holder or 'unknown'}): "
                              "wait for it to finish, then run again.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


class _Stops:
    """Ctrl-C and a hang-up (SIGINT, SIGHUP) during a run, raised as KeyboardInterrupt between two records, never
    in the middle of one. Signals are only caught in the main thread; elsewhere nothing changes."""

    SIGNALS = (signal.SIGINT, signal.SIGHUP)

    def __init__(self):
        self.recording = self.pending = False
        self.previous: dict = {}

    def __enter__(self) -> "_Stops":
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._stop) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def _stop(self, number, frame) -> None:
        if self.recording:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def unbroken(self):
        """A block that a stop does not cut: a stop that comes during it is raised after it."""
        self.recording = True
        try:
            yield
        finally:
            self.recording = False
        if self.pending:
            raise KeyboardInterrupt


def grade_lab(course: Course, lab: str, students: list[str] | None = None, *, pool: GradingPool | None = None,
              workers: int | None = None, scheduler: str | None = None, limits: Limits | None = None,
              force: bool = False, progress: bool = True, isolated: bool = True) -> list[SubmissionOutcome]:
    """Autograde `submitted/*/<lab>/` (or only `students`) in parallel, each submission alone in a sandbox; a broken
    one never stops the rest. Runs in `pool`, or in a pool opened for this call (`workers` threads here, or
    `scheduler`). Submissions graded before with the same lab, limits and isolation are reused unless `force`,
    except those the grading machine failed. Raises GradingInterrupted on Ctrl-C or a hang-up, with every
    submission finished until then recorded."""
    done: dict[str, SubmissionOutcome] = {}
    chosen = _students(course, lab, students)
    with lab_lock(course, lab), _Stops() as stops:
        try:
            if pool is not None:
                return _grade(course, lab, chosen, pool, limits, force, progress, stops, done)
            with GradingPool(workers, scheduler, isolated) as own:
                return _grade(course, lab, chosen, own, limits, force, progress, stops, done)
        except KeyboardInterrupt:
            raise GradingInterrupted(lab, len(done), len(chosen) - len(done)) from None


def _students(course: Course, lab: str, students: list[str] | None) -> list[str]:
    """The students to grade: `students`, each of whom must have a submission folder, or everyone who has one."""
    submitted = course.submitted_students(lab)
    if students is None:
        if not submitted:
            raise CourseError(f"Nothing to grade: no folder submitted/<student>/{lab}/ in {course.root}.")
        return submitted
    unknown = [s for s in students if s not in submitted]
    if unknown:
        raise CourseError(f"No submission of {lab} by {', '.join(unknown)} (no folder submitted/<student>/{lab}/).")
    return list(dict.fromkeys(students))


def _grade(course: Course, lab: str, students: list[str], pool: GradingPool, limits: Limits | None, force: bool,
           progress: bool, stops: _Stops, done: dict[str, SubmissionOutcome]) -> list[SubmissionOutcome]:
    limits = limits or default_limits(course)
    bundle = lab_bundle(course, lab)
    _check_gradebook(course, bundle)
    lab_print = bundle.fingerprint(limits, kernel_env(), pool.isolated)
    jobs: dict[str, GradeJob] = {}
    prints: dict[str, str] = {}
    stamps: dict[str, datetime | None] = {}
    reused = []
    for student in students:
        submission = read_submission(course, student, lab)
        content = submission.notebook if submission.notebook is not None else str(submission.failure).encode()
        prints[student] = _fingerprint(lab_print, content, submission.timestamp)
        stamps[student] = submission.timestamp
        saved = _load_state(state_folder(course, lab) / f"{student}.json")
        if (not force and saved is not None and saved[0] == prints[student]
                and saved[1].status is not Status.MACHINE_FAILURE):  # the machine's failures are tried again
            done[student] = dataclasses.replace(saved[1], reused=True)
            reused.append(student)
        elif submission.failure is not None:
            outcome = SubmissionOutcome(lab, student, failure=submission.failure, isolated=pool.isolated)
            with stops.unbroken():
                done[student] = record(course, lab, JobOutput(outcome), prints[student], None)
        else:
            jobs[student] = make_job(course, bundle, student, submission.notebook, limits, pool)
    if jobs:
        bar = tqdm(total=len(jobs), desc=f"grading {lab}", unit="student", disable=not progress)

        def finished(student: str, output: JobOutput) -> None:
            with stops.unbroken():
                done[student] = record(course, lab, output, prints[student], stamps[student])
            bar.update()

        try:
            pool.run(jobs, finished)
        finally:
            bar.close()
    with stops.unbroken():
        apply_due_date(course, lab, reused)
        ordered = [done[s] for s in students]
        write_summary(course, lab, ordered, bundle.order)
    return ordered


def record(course: Course, lab: str, output: JobOutput, fingerprint: str,
           timestamp: datetime | None) -> SubmissionOutcome:
    """Record one submission's outcome, all of it or nothing: its grades and late penalty in the gradebook (none
    when it was not graded), `autograded/`, its feedback page, and its state (the mark that it is done)."""
    outcome, student = output.outcome, output.outcome.student
    notebook = None if output.notebook is None else nbformat.reads(output.notebook, as_version=4)
    files = {course.autograded_notebook(lab, student): output.notebook,
             state_folder(course, lab) / f"{student}.json": json.dumps(
                 {"fingerprint": fingerprint, "outcome": outcome.to_json()}, indent=1)}
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        if outcome.failure is not None:
            late = None
            with contextlib.suppress(MissingEntry):
                gb.remove_submission(lab, student)  # an earlier grade would contradict the status
        else:
            try:
                known = gb.find_submission(lab, student) is not None
            except MissingEntry:
                known = False
            try:
                late = _enter_grades(gb, course, lab, outcome, notebook, timestamp)
            except BaseException:
                _undo(gb, lab, student, known)
                raise
        files[course.feedback_page(lab, student)] = feedback_page(outcome, notebook, late)
        staged = []
        try:
            staged = _stage(files)
            gb.db.commit()
        except BaseException:
            _discard(staged)
            if outcome.failure is None:
                _undo(gb, lab, student, known)
            raise
    _replace(staged)
    return outcome


def _undo(gb: Gradebook, lab: str, student: str, known: bool) -> None:
    """Take back what an unfinished record put in the gradebook (nbgrader commits a new submission at once)."""
    gb.db.rollback()
    if not known:
        with contextlib.suppress(MissingEntry):
            gb.remove_submission(lab, student)


def _enter_grades(gb: Gradebook, course: Course, lab: str, outcome: SubmissionOutcome,
                  notebook: nbformat.NotebookNode, timestamp: datetime | None) -> Late | None:
    """Put a graded outcome into the gradebook as `nbgrader autograde` would (uncommitted), with the submission's
    time, extension and late penalty; the resulting Late."""
    student = outcome.student
    gb.update_or_create_student(student)
    submission = gb.update_or_create_submission(lab, student)
    if timestamp is not None:
        submission.timestamp = timestamp
    submission.extension = _extension(course, lab, student, submission.assignment.duedate)
    tests = {t.grade_id: t for t in outcome.tests}
    blank = unanswered(notebook)
    graded = gb.find_submission_notebook(lab, lab, student)
    for grade in graded.grades:
        test = tests.get(grade.name)
        grade.auto_score = None if test is None else test.score
        grade.needs_manual_grade = test is not None and test.score is None
    for comment in graded.comments:
        comment.auto_comment = "No response." if comment.name in blank else None
    gb.db.flush()
    gb.db.expire(graded)  # its score is computed by the database, from the grades just set
    return late_penalty(course, student, submission.total_seconds_late, graded)


def _stage(files: dict[Path, str | None]) -> list[tuple[Path, Path | None]]:
    """Write each file's text beside it under a temporary name (None: the file is to go); (path, staged) pairs."""
    staged = []
    try:
        for path, text in files.items():
            if text is None:
                staged.append((path, None))
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            staged.append((path, Path(tmp)))
    except BaseException:
        _discard(staged)
        raise
    return staged


def _discard(staged: list[tuple[Path, Path | None]]) -> None:
    for _, tmp in staged:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _replace(staged: list[tuple[Path, Path | None]]) -> None:
    """Put staged files in place (each atomically), the state last: it marks the submission as recorded."""
    for path, tmp in staged:
        if tmp is None:
            path.unlink(missing_ok=True)  # a stale notebook would contradict the outcome
        else:
            os.replace(tmp, path)


def set_extension(course: Course, lab: str, student: str, until: datetime | None) -> None:
    """Give `student` until `until` (naive UTC) to submit `lab`, or take an extension back (None). Kept in
    `grading/<lab>/extensions.json` and set on the student's submission in the gradebook (nbgrader's own
    `extension`, which the formgrader and late penalties read); the penalty changes without regrading."""
    extensions = _extensions(course, lab)
    if until is None:
        extensions.pop(student, None)
    else:
        extensions[student] = until.isoformat()
    path = lab_folder(course, lab) / EXTENSIONS_FILE
    _replace(_stage({path: json.dumps(extensions, indent=1, sort_keys=True)}))
    apply_due_date(course, lab, [student])


def _extensions(course: Course, lab: str) -> dict[str, str]:
    path = lab_folder(course, lab) / EXTENSIONS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise CourseError(f"{path} is not valid JSON ({err}): fix or remove it.") from None


def _extension(course: Course, lab: str, student: str, duedate: datetime | None):
    """The extension of `student`'s submission of `lab`, as nbgrader's gradebook holds it (a timedelta), or None."""
    until = _extensions(course, lab).get(student)
    if until is None or duedate is None:
        return None
    return max(datetime.fromisoformat(until) - duedate, timedelta(0))


def apply_due_date(course: Course, lab: str, students: list[str]) -> None:
    """Set the late penalty of `students`' graded submissions from the lab's due date and their extensions, as
    `nbgrader autograde` does, and rewrite the feedback page of those whose penalty changed. Done for reused
    grades, so a changed due date or a new extension needs no regrading."""
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        for student in students:
            saved = _load_state(state_folder(course, lab) / f"{student}.json")
            try:
                submission = gb.find_submission(lab, student)
                record = gb.find_submission_notebook(lab, lab, student)
            except MissingEntry:
                continue
            if saved is None or saved[1].failure is not None:
                continue
            before = (submission.extension, record.late_submission_penalty)
            submission.extension = _extension(course, lab, student, submission.assignment.duedate)
            late = late_penalty(course, student, submission.total_seconds_late, record)
            page = course.feedback_page(lab, student)
            if (submission.extension, record.late_submission_penalty) != before or not page.is_file():
                notebook = nbformat.read(course.autograded_notebook(lab, student), as_version=4)
                staged = _stage({page: feedback_page(with_hand_grades(saved[1], record), notebook, late)})
                gb.db.commit()
                _replace(staged)
        gb.db.commit()


def _load_state(path: Path) -> tuple[str, SubmissionOutcome] | None:
    """The fingerprint and outcome stored at `path`; None when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text())
        return data["fingerprint"], SubmissionOutcome.from_json(data["outcome"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def failed_share(outcomes: list[SubmissionOutcome], order: list[str]) -> dict[str, float]:
    """For each autograded test, the share of graded students who did not earn all its points."""
    graded = [o for o in outcomes if o.status is Status.GRADED]
    return {test: sum(test in o.lost() for o in graded) / len(graded) if graded else 0.0 for test in order}


def summary_text(lab: str, outcomes: list[SubmissionOutcome], order: list[str]) -> str:
    """Students by status, what happened in their runs (time limits, kernels lost...), and each test's failure
    share among the graded, as Markdown."""
    statuses = Counter(o.status for o in outcomes)
    notes = Counter(kind for o in outcomes for kind in {n.kind for n in o.notes})
    graded = statuses[Status.GRADED]
    lines = [f"# Grading summary: {lab}", "",
             f"{graded} of {len(outcomes)} students graded, {len(outcomes) - graded} not graded"
             f" ({sum(o.reused for o in outcomes)} reused from an earlier run).", ""]
    unisolated = sum(not o.isolated for o in outcomes)
    if unisolated:
        lines += [f"**{unisolated} of {len(outcomes)} submissions were graded without a sandbox (--no-isolation).**",
                  ""]
    if graded < len(outcomes):
        lines += ["| status | students |", "| --- | --- |"]
        lines += [f"| {s.value} | {statuses[s]} |" for s in Status if s is not Status.GRADED and statuses[s]]
        lines.append("")
    if notes:
        lines += ["| during the run | students |", "| --- | --- |"]
        lines += [f"| {k.value} | {notes[k]} |" for k in NoteKind if notes[k]]
        lines.append("")
    lines += ["| test | failed by |", "| --- | --- |"]
    lines += [f"| {t} | {s:.0%} |" for t, s in failed_share(outcomes, order).items()]
    return "\n".join(lines) + "\n"


def write_summary(course: Course, lab: str, outcomes: list[SubmissionOutcome], order: list[str]) -> Path:
    """Save `summary.md` and a bar chart `failed_tests.png` in `grading/<lab>/`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = lab_folder(course, lab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.md").write_text(summary_text(lab, outcomes, order))
    share = failed_share(outcomes, order)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(share) + 1.2))
    ax.barh(list(share)[::-1], [100 * v for v in share.values()][::-1], color="tab:red")
    ax.set_xlim(0, 100)
    ax.set_xlabel("graded students who failed the test (%)")
    ax.set_title(f"{lab}: {sum(o.status is Status.GRADED for o in outcomes)} students graded")
    fig.tight_layout()
    fig.savefig(folder / "failed_tests.png", dpi=120)
    plt.close(fig)
    return folder
