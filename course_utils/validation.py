"""`course validate`: prove each lab's solution earns full marks, its release none, and nothing drifted."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .pipeline import Course, CourseError, SubmissionResult, same_release

REFERENCE, UNTOUCHED = "reference", "untouched"


@dataclass
class LabReport:
    """Everything `course validate` learned about one lab."""

    lab: str
    reference: SubmissionResult | None = None
    untouched: SubmissionResult | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _grade_alone(repo_root: str, lab: str, student: str, notebook: dict, threads: int) -> SubmissionResult:
    """Release `lab` in a private course copy, submit `notebook` as `student`, and autograde it."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the grading kernel inherits this
    with tempfile.TemporaryDirectory(prefix=f"validate-{lab}-") as tmp:
        course = Course.copy_of(Path(repo_root), Path(tmp), [lab])
        course.release(lab)
        course.submit(lab, student, nbformat.from_dict(notebook))
        return course.autograde(lab, student)


def validate(repo: Course, labs: list[str], workers: int) -> list[LabReport]:
    """Validate `labs`, running the independent autograding jobs of all labs `workers` at a time."""
    reports = {lab: LabReport(lab) for lab in labs}
    jobs: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="validate-release-") as tmp:
        fresh = Course.copy_of(repo.root, Path(tmp), labs)
        for lab in labs:
            fresh.release(lab)
            drift = same_release(fresh.root / "release" / lab, repo.root / "release" / lab)
            reports[lab].problems += [f"release/ is stale: {d}; run `course release {lab}`" for d in drift]
            shipped = repo.release_notebook(lab) if repo.release_notebook(lab).is_file() else fresh.release_notebook(lab)
            jobs[lab, REFERENCE] = nbformat.read(repo.source_notebook(lab), as_version=4)
            jobs[lab, UNTOUCHED] = nbformat.read(shipped, as_version=4)
            for mistake in repo.mistakes(lab):
                jobs[lab, f"mistake_{mistake.name}"] = repo.notebook_with_mistake(lab, mistake)
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(_grade_alone, str(repo.root), *key, dict(nb), threads) for key, nb in jobs.items()}
        results = {}
        for (lab, student), future in futures.items():
            try:
                results[lab, student] = future.result()
            except CourseError as err:
                reports[lab].problems.append(f"{student}: {err}")
    for lab, report in reports.items():
        report.reference, report.untouched = results.get((lab, REFERENCE)), results.get((lab, UNTOUCHED))
        _judge(repo, report, results)
    return list(reports.values())


def _judge(repo: Course, report: LabReport, results: dict[tuple[str, str], SubmissionResult]) -> None:
    ref, untouched = report.reference, report.untouched
    if ref is not None:
        report.problems += [f"the solution notebook raised an error in {e}" for e in ref.errors]
        if ref.max_auto_score == 0:
            report.problems.append("the lab has no autograded tests")
        report.problems += [f"the solution loses points in {t}" for t in sorted(ref.lost())]
    if untouched is not None:
        earned = [t.grade_id for t in untouched.tests if t.autograded and t.score > 0]
        report.problems += [f"the untouched release earns points in {t}" for t in earned]
    for mistake in repo.mistakes(report.lab):
        result = results.get((report.lab, f"mistake_{mistake.name}"))
        if result is None:
            continue
        if result.lost() != mistake.loses:
            report.problems.append(
                f"mistake {mistake.name!r} should lose exactly {sorted(mistake.loses)} but loses {sorted(result.lost())}"
            )
