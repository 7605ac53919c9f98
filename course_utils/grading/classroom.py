"""Autograde a whole class: submissions graded in parallel, results written by one writer, runs resumable.

`grade_lab` builds one self-contained `GradeJob` per changed submission, hands the jobs to a
`GradingPool` (local threads, or a Dask cluster), and as each result comes back writes it to the
nbgrader gradebook, `autograded/` and `feedback/`, then records it under `grading/<lab>/state/` so an
interrupted or repeated run grades only what is new.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import AssignLatePenalties
from tqdm.auto import tqdm

from ..runtime import QUICK_ENV
from . import feedback
from .course import Course, CourseError, SubmissionResult, TestResult
from .jobs import GradeJob, JobResult, Limits, import_aliases, nbgrader_id
from .pool import GradingPool

DATA_ENV = "COURSE_DATA_ROOT"


@dataclass
class GradeOutcome:
    """One student's result, or the reason their submission could not be graded."""

    student: str
    result: SubmissionResult | None
    failure: str | None = None  # "kind: details"
    notes: list[str] = field(default_factory=list)  # limits hit, the kernel lost...
    reused: bool = False  # unchanged since an earlier run, so not graded again
    isolated: bool = True  # graded in a sandbox (False only under --no-isolation)


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


def _state_dir(course: Course, lab: str) -> Path:
    return course.root / "grading" / lab / "state"


def _fingerprint(lab_print: str, submission: bytes) -> str:
    return hashlib.sha256(lab_print.encode() + hashlib.sha256(submission).digest()).hexdigest()


def default_limits(course: Course) -> Limits:
    return Limits(cell_s=int(course.config.ExecutePreprocessor.get("timeout", Limits.cell_s)))


def grade_lab(course: Course, lab: str, students: list[str] | None = None, *, pool: GradingPool | None = None,
              workers: int | None = None, scheduler: str | None = None, limits: Limits | None = None,
              force: bool = False, progress: bool = True, isolated: bool = True) -> list[GradeOutcome]:
    """Autograde `submitted/*/<lab>/` in parallel, each submission alone in a sandbox; a broken one never stops
    the rest. Runs in `pool`, or in a pool opened for this call (`workers` threads here, or `scheduler`).
    Submissions graded before with the same lab, limits and isolation are reused unless `force`, except those the
    grading machine failed."""
    if pool is None:
        with GradingPool(workers, scheduler, isolated) as own:
            return grade_lab(course, lab, students, pool=own, limits=limits, force=force, progress=progress)
    students = students if students is not None else course.submitted_students(lab)
    if not students:
        raise CourseError(f"Nothing to grade: no folder submitted/<student>/{lab}/ in {course.root}.")
    limits = limits or default_limits(course)
    bundle = lab_bundle(course, lab)
    _check_gradebook(course, bundle)
    lab_print = bundle.fingerprint(limits, kernel_env(), pool.isolated)
    state = _state_dir(course, lab)
    outcomes: dict[str, GradeOutcome] = {}
    jobs: dict[str, GradeJob] = {}
    prints: dict[str, str] = {}
    for student in students:
        path = course.root / "submitted" / student / lab / f"{lab}.ipynb"
        submission = path.read_bytes() if path.is_file() else b""
        prints[student] = _fingerprint(lab_print, submission)
        saved = _load_state(state / f"{student}.json")
        if (not force and saved is not None and saved["fingerprint"] == prints[student]
                and not feedback.machine_failure(saved["failure"])):  # the machine's failures are tried again
            outcomes[student] = _outcome_from_state(student, lab, saved)
            continue
        jobs[student] = make_job(course, bundle, student, submission, limits, pool)
    if jobs:
        bar = tqdm(total=len(jobs), desc=f"grading {lab}", unit="student", disable=not progress)

        def done(student: str, result: JobResult) -> None:
            outcomes[student] = record(course, lab, result, prints[student])
            bar.update()
            if result.failure:
                bar.write(f"{student}: not graded ({result.failure})")

        try:
            pool.run(jobs, done)
        finally:
            bar.close()
    apply_due_date(course, lab, [s for s in students if s in outcomes])
    ordered = [outcomes[s] for s in students if s in outcomes]
    write_summary(course, lab, ordered, bundle.order)
    return ordered


def record(course: Course, lab: str, result: JobResult, fingerprint: str) -> GradeOutcome:
    """Write one result to the gradebook, autograded/ and feedback/, then remember it as done (the only writer)."""
    autograded = course.autograded_notebook(lab, result.student)
    autograded.parent.mkdir(parents=True, exist_ok=True)
    if result.notebook is not None:
        autograded.write_text(result.notebook)
    elif autograded.exists():
        autograded.unlink()  # a stale notebook would contradict the zero now in the gradebook
    page = course.root / "feedback" / result.student / lab / f"{lab}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(result.feedback)
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
    outcome = GradeOutcome(result.student, SubmissionResult(lab, result.student, tests, runtime_s=result.runtime_s,
                                                            messages=result.messages),
                           result.failure, result.notes, isolated=result.isolated)
    _save_state(_state_dir(course, lab) / f"{result.student}.json", {
        "fingerprint": fingerprint, "failure": result.failure, "notes": result.notes, "worker": result.worker,
        "runtime_s": result.runtime_s, "isolated": result.isolated, "messages": result.messages,
        "tests": [asdict(t) for t in tests]})
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
                page = course.root / "feedback" / student / lab / f"{notebook.name}.html"
                if page.is_file():
                    page.write_text(feedback.with_late_note(page.read_text(), late,
                                                            notebook.late_submission_penalty or 0.0))
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
    result = SubmissionResult(lab, student, tests, runtime_s=saved["runtime_s"], messages=saved.get("messages", {}))
    return GradeOutcome(student, result, saved["failure"], saved["notes"], reused=True,
                        isolated=saved.get("isolated", True))


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
    unisolated = sum(not o.isolated for o in outcomes)
    if unisolated:
        lines += [f"**{unisolated} of {len(outcomes)} submissions were graded without a sandbox (--no-isolation).**",
                  ""]
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
    """Export the whole gradebook to `grades.csv` at the course root, with a column `sandboxed` saying whether
    each grade was made in a sandbox ("no" for --no-isolation, empty where `course grade` made none)."""
    path = course.export_grades(course.root / "grades.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        saved = _load_state(_state_dir(course, row.get("assignment", "")) / f"{row.get('student_id', '')}.json")
        row["sandboxed"] = "" if saved is None else ("yes" if saved.get("isolated", True) else "no")
    if rows:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path
