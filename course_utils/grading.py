"""Autograde a whole class: submissions graded in parallel (Dask), results written by one writer, runs resumable.

`grade_lab` builds one self-contained `GradeJob` per changed submission, hands the jobs to Dask (a
local cluster on this machine, or a running scheduler on a cluster), and as each result comes back
writes it to the nbgrader gradebook, `autograded/` and `feedback/`, then records it under
`grading/<lab>/state/` so an interrupted or repeated run grades only what is new.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import AssignLatePenalties
from tqdm.auto import tqdm

from .grading_job import GradeJob, JobResult, Limits, import_aliases, nbgrader_id, run_job, submodules_used
from .pipeline import Course, CourseError, SubmissionResult, TestResult
from .runtime import QUICK_ENV

DATA_ENV = "COURSE_DATA_ROOT"


@dataclass
class GradeOutcome:
    """One student's result, or the reason their submission could not be graded."""

    student: str
    result: SubmissionResult | None
    failure: str | None = None  # "kind: details"
    notes: list[str] = field(default_factory=list)  # limits hit by single cells, tampering caught...
    reused: bool = False  # unchanged since an earlier run, so not graded again


@dataclass
class LabBundle:
    """What every job of one lab shares: the release, a gradebook made from it, its tests and imports."""

    lab: str
    release: str
    gradebook: bytes
    tests: dict[str, str]
    aliases: dict[str, str]
    modules: list[str]
    order: list[str]  # autograded test ids in notebook order

    def fingerprint(self, limits: Limits, env: dict[str, str]) -> str:
        blob = json.dumps([self.release, self.tests, asdict(limits), sorted(env.items())], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def lab_bundle(course: Course, lab: str) -> LabBundle:
    """Release `lab` afresh into a scratch course and keep what a grading job needs from it."""
    with tempfile.TemporaryDirectory(prefix=f"course-bundle-{lab}-") as tmp:
        fresh = Course.copy_of(course.root, Path(tmp), [lab])
        fresh.release(lab)
        release = fresh.release_notebook(lab).read_text()
        db = Path(tmp) / "gradebook.db"
        gradebook = db.read_bytes()
        source = nbformat.read(fresh.source_notebook(lab), as_version=4)
    tests = {nbgrader_id(c): c.source for c in source.cells if c.cell_type == "code" and nbgrader_id(c)
             and c.metadata["nbgrader"].get("grade") and not c.metadata["nbgrader"].get("solution")}
    plain = [c.source for c in source.cells if c.cell_type == "code" and not c.metadata.get("nbgrader", {}).get(
        "solution")]
    aliases = import_aliases(plain)
    modules = submodules_used(plain + list(tests.values()), aliases)
    return LabBundle(lab, release, gradebook, tests, aliases, modules, list(tests))


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


def _kernel_env() -> dict[str, str]:
    """Settings the grading kernels must see on every machine (the data folder made absolute)."""
    env = {k: os.environ[k] for k in (QUICK_ENV, DATA_ENV) if k in os.environ}
    if DATA_ENV in env:
        env[DATA_ENV] = str(Path(env[DATA_ENV]).resolve())
    return env


def _state_dir(course: Course, lab: str) -> Path:
    return course.root / "grading" / lab / "state"


def _fingerprint(lab_print: str, submission: bytes) -> str:
    return hashlib.sha256(lab_print.encode() + hashlib.sha256(submission).digest()).hexdigest()


def _client(workers: int, scheduler: str | None):
    """A Dask client: to the scheduler at `scheduler`, or to a local cluster of `workers` threads."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s")
        except OSError as err:
            raise CourseError(f"Cannot reach the Dask scheduler at {scheduler}: {err}") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None,
                           silence_logs=logging.ERROR)
    return Client(cluster)


def grade_lab(course: Course, lab: str, students: list[str] | None = None, *, workers: int | None = None,
              scheduler: str | None = None, limits: Limits | None = None, force: bool = False,
              progress: bool = True) -> list[GradeOutcome]:
    """Autograde `submitted/*/<lab>/` in parallel, each submission alone in a sandbox; a broken one never stops
    the rest. Submissions graded before with the same lab and limits are reused unless `force`."""
    students = students if students is not None else course.submitted_students(lab)
    if not students:
        raise CourseError(f"Nothing to grade: no folder submitted/<student>/{lab}/ in {course.root}.")
    workers = max(1, workers or os.cpu_count() or 1)
    limits = limits or Limits(cell_s=int(course.config.ExecutePreprocessor.get("timeout", Limits.cell_s)))
    bundle = lab_bundle(course, lab)
    _check_gradebook(course, bundle)
    env = _kernel_env()
    lab_print = bundle.fingerprint(limits, env)
    state = _state_dir(course, lab)
    outcomes: dict[str, GradeOutcome] = {}
    jobs: dict[str, tuple[GradeJob, str]] = {}
    for student in students:
        path = course.root / "submitted" / student / lab / f"{lab}.ipynb"
        submission = path.read_bytes() if path.is_file() else b""
        print_ = _fingerprint(lab_print, submission)
        saved = _load_state(state / f"{student}.json")
        if not force and saved is not None and saved["fingerprint"] == print_:
            outcomes[student] = _outcome_from_state(student, lab, saved)
            continue
        jobs[student] = (GradeJob(
            lab=lab, student=student, course_id=course.coursedir.course_id, submission=submission,
            release=bundle.release, gradebook=bundle.gradebook, tests=bundle.tests, aliases=bundle.aliases,
            modules=bundle.modules,
            limits=limits, env=env, denied=[str(course.root)], readable=_readable(course),
            threads=1 if scheduler else max(1, (os.cpu_count() or 1) // workers)), print_)
    if jobs:
        _run(course, lab, jobs, workers, scheduler, progress, outcomes)
    apply_due_date(course, lab, [s for s in students if s in outcomes])
    ordered = [outcomes[s] for s in students if s in outcomes]
    write_summary(course, lab, ordered, bundle.order)
    return ordered


def _readable(course: Course) -> list[str]:
    """Folders inside the course that grading kernels may read: the course_utils package and the releases."""
    package = Path(__file__).resolve().parent
    return [str(package), str(course.root / "release")] + (
        [str(Path(os.environ[DATA_ENV]).resolve())] if DATA_ENV in os.environ else [])


def _run(course: Course, lab: str, jobs: dict[str, tuple[GradeJob, str]], workers: int, scheduler: str | None,
         progress: bool, outcomes: dict[str, GradeOutcome]) -> None:
    from distributed import as_completed

    client = _client(workers, scheduler)
    try:
        futures = {client.submit(run_job, job, key=f"grade-{lab}-{student}-{print_[:12]}", pure=False,
                                 retries=0): student for student, (job, print_) in jobs.items()}
        bar = tqdm(total=len(futures), desc=f"grading {lab}", unit="student", disable=not progress)
        for future in as_completed(futures):
            student = futures[future]
            try:
                result = future.result()
            except Exception as err:  # the worker itself was lost; the submission is not to blame
                result = JobResult(student, failure=f"grading worker lost: {type(err).__name__}: {err}"[:300])
            outcomes[student] = record(course, lab, result, jobs[student][1])
            bar.update()
            if result.failure:
                bar.write(f"{student}: not graded ({result.failure})")
        bar.close()
    finally:
        client.close()
        if not scheduler and client.cluster is not None:
            client.cluster.close()


def record(course: Course, lab: str, result: JobResult, fingerprint: str) -> GradeOutcome:
    """Write one result to the gradebook, autograded/ and feedback/, then remember it as done (the only writer)."""
    autograded = course.autograded_notebook(lab, result.student)
    autograded.parent.mkdir(parents=True, exist_ok=True)
    if result.notebook is not None:
        autograded.write_text(result.notebook)
    elif autograded.exists():
        autograded.unlink()  # a stale notebook would contradict the zero now in the gradebook
    feedback = course.root / "feedback" / result.student / lab / f"{lab}.html"
    feedback.parent.mkdir(parents=True, exist_ok=True)
    feedback.write_text(result.feedback)
    scores = {g["name"]: g for g in result.grades}
    tests = []
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        gb.update_or_create_student(result.student)
        gb.update_or_create_submission(lab, result.student)
        notebook = gb.find_submission_notebook(lab, lab, result.student)
        for grade in notebook.grades:
            got = scores.get(grade.name)
            grade.auto_score = got["auto_score"] if got else 0.0
            grade.needs_manual_grade = bool(got and got["needs_manual_grade"])
            cell = grade.cell
            tests.append(TestResult(grade.name, float(grade.auto_score or 0.0), float(grade.max_score),
                                    cell.cell_type == "code" and not getattr(cell, "solution", False)))
        comments = {c["name"]: c["auto_comment"] for c in result.comments}
        for comment in notebook.comments:
            comment.auto_comment = comments.get(comment.name, "Not graded." if result.failure else None)
        gb.db.commit()
    outcome = GradeOutcome(result.student, SubmissionResult(lab, result.student, tests, runtime_s=result.runtime_s),
                           result.failure, result.notes)
    if result.failure is None:
        outcome.result.errors = [n for n in result.notes]
    if result.log:
        log = _state_dir(course, lab) / f"{result.student}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.log)
    _save_state(_state_dir(course, lab) / f"{result.student}.json", {
        "fingerprint": fingerprint, "failure": result.failure, "notes": result.notes, "worker": result.worker,
        "runtime_s": result.runtime_s, "tests": [asdict(t) for t in tests]})
    return outcome


def apply_due_date(course: Course, lab: str, students: list[str]) -> None:
    """Record each submission's time (`timestamp.txt`) and set its late penalty from the lab's due date in the
    gradebook, with nbgrader's late-submission plugin (`c.LateSubmissionPlugin.penalty_method`), as
    `nbgrader autograde` does. Done for reused grades too, so a changed due date needs no regrading."""
    assigner = AssignLatePenalties(config=course.config)
    assigner.init_plugin()
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        for student in students:
            try:
                submission = gb.find_submission(lab, student)
            except MissingEntry:
                continue
            folder = course.root / "submitted" / student / lab
            timestamp = course.coursedir.get_existing_timestamp(str(folder)) if folder.is_dir() else None
            if timestamp:
                submission.timestamp = timestamp
            late = submission.total_seconds_late
            for notebook in submission.notebooks:
                penalty = assigner.plugin_inst.late_submission_penalty(student, notebook.score, late) if late > 0 else None
                notebook.late_submission_penalty = None if penalty is None else min(max(penalty, 0.0), notebook.score)
        gb.db.commit()


def _save_state(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)  # atomic: an interrupted run never leaves half a record


def _load_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _outcome_from_state(student: str, lab: str, saved: dict) -> GradeOutcome:
    tests = [TestResult(**t) for t in saved["tests"]]
    return GradeOutcome(student, SubmissionResult(lab, student, tests, runtime_s=saved["runtime_s"]),
                        saved["failure"], saved["notes"], reused=True)


def failed_share(outcomes: list[GradeOutcome], order: list[str]) -> dict[str, float]:
    """For each autograded test, the share of students who did not earn all its points (failures count)."""
    share = {}
    for test in order:
        lost = sum(1 for o in outcomes if o.failure or o.result is None or test in o.result.lost())
        share[test] = lost / len(outcomes) if outcomes else 0.0
    return share


def summary_text(lab: str, outcomes: list[GradeOutcome], order: list[str]) -> str:
    """Students graded, failures and notes by reason, and each test's failure share, as Markdown."""
    graded = [o for o in outcomes if not o.failure]
    reasons: dict[str, int] = {}
    for o in outcomes:
        for kind in ([o.failure] if o.failure else []) + o.notes:
            key = kind.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    lines = [f"# Grading summary: {lab}", "",
             f"{len(graded)} of {len(outcomes)} students graded, {len(outcomes) - len(graded)} could not be graded"
             f" ({sum(o.reused for o in outcomes)} reused from an earlier run).", ""]
    if reasons:
        lines += ["| reason | students |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in sorted(reasons.items())]
        lines.append("")
    lines += ["| test | failed by |", "| --- | --- |"]
    lines += [f"| {t} | {s:.0%} |" for t, s in failed_share(outcomes, order).items()]
    return "\n".join(lines) + "\n"


def write_summary(course: Course, lab: str, outcomes: list[GradeOutcome], order: list[str]) -> Path:
    """Save `summary.md` and a bar chart `failed_tests.png` in `grading/<lab>/`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = course.root / "grading" / lab
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.md").write_text(summary_text(lab, outcomes, order))
    share = failed_share(outcomes, order)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(share) + 1.2))
    ax.barh(list(share)[::-1], [100 * v for v in share.values()][::-1], color="tab:red")
    ax.set_xlim(0, 100)
    ax.set_xlabel("students who failed the test (%)")
    ax.set_title(f"{lab}: {len(outcomes)} students")
    fig.tight_layout()
    fig.savefig(folder / "failed_tests.png", dpi=120)
    plt.close(fig)
    return folder


def grades_csv(course: Course) -> Path:
    """Export the whole gradebook to `grades.csv` at the course root."""
    return course.export_grades(course.root / "grades.csv")
