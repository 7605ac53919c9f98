"""`course validate`: prove each lab's solution earns full marks, its release none, and nothing drifted.

Every notebook is graded the way `course grade` grades a student (same sandbox, same referee), so a lab
that validates is a lab that grades.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .classroom import bundle_from, default_limits, kernel_env
from .course import Course, SubmissionResult, TestResult, same_release
from .jobs import GradeJob, JobResult, defined_names, nbgrader_id
from .pool import GradingPool
from .referee import free_names

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


def as_submission_result(lab: str, student: str, result: JobResult) -> SubmissionResult:
    """A grading job's result in the form the pipeline reports: scores, and the errors the notebook raised."""
    tests = [TestResult(g["name"], float(g["auto_score"] or 0.0), g["max_score"], g["autograded"])
             for g in result.grades]
    errors = [f"could not be graded: {result.failure}"] if result.failure else []
    if result.notebook:
        nb = nbformat.reads(result.notebook, as_version=4)
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code" or (meta.get("grade") and not meta.get("solution")):
                continue
            errors += [f"{meta.get('grade_id') or f'cell {index + 1}'}: {o.get('ename')}: {o.get('evalue')}"
                       for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    errors += [n for n in result.notes if not n.startswith("output truncated")]
    return SubmissionResult(lab, student, tests, errors=errors, runtime_s=result.runtime_s, messages=result.messages)


def test_inputs(source: nbformat.NotebookNode, tests: dict[str, str], aliases: dict[str, str]) -> list[str]:
    """Tests that read a name the lab's own (non-answer) cells define: the student's kernel controls such a
    name, so a test must build what it compares against itself."""
    answers = {n for c in source.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
               for n in defined_names(c.source)}
    plain = {n for c in source.cells if c.cell_type == "code" and not nbgrader_id(c) for n in defined_names(c.source)}
    problems = []
    for gid, code in tests.items():
        borrowed = sorted((set(free_names(code)) & plain) - answers - set(aliases))
        if borrowed:
            problems.append(f"test {gid} reads {', '.join(borrowed)}, defined by the lab's own cells, which a student "
                            "can change: build it inside the test (or read it from an answer cell)")
    return problems


RESULT_NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])|(?<![\w.])\d+(?:\.\d+)?\s?%")


def leaked_results(source: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[str]:
    """Numbers the student version's text quotes that only the solution's run printed (a results write-up
    left in the release): decimals and percentages found in the source's outputs and in no code cell."""
    printed, code = set(), set()
    for cell in source.cells:
        if cell.cell_type == "code":
            code |= set(RESULT_NUMBER.findall(cell.source))
            for out in cell.get("outputs", []):
                text = out.get("text") or out.get("data", {}).get("text/plain", "")
                printed |= set(RESULT_NUMBER.findall(str(text)))
    found = []
    for index, cell in enumerate(release.cells):
        if cell.cell_type == "markdown":
            quoted = sorted(set(RESULT_NUMBER.findall(cell.source)) & printed - code)
            if quoted:
                found.append(f"cell {index + 1} quotes {', '.join(quoted)} from the solution's run")
    return found


def validate(repo: Course, labs: list[str], pool: GradingPool) -> list[LabReport]:
    """Validate `labs`, grading the solution, the untouched release and every typical mistake of each in `pool`."""
    reports = {lab: LabReport(lab) for lab in labs}
    jobs: dict[tuple[str, str], GradeJob] = {}
    limits = default_limits(repo)
    with tempfile.TemporaryDirectory(prefix="validate-release-") as tmp:
        fresh = Course.copy_of(repo.root, Path(tmp), labs)
        for lab in labs:
            fresh.release(lab)
            drift = same_release(fresh.root / "release" / lab, repo.root / "release" / lab)
            reports[lab].problems += [f"release/ is stale: {d}; run `course release {lab}`" for d in drift]
            source = nbformat.read(repo.source_notebook(lab), as_version=4)
            release = fresh.release_notebook(lab).read_text()
            bundle = bundle_from(lab, source, release)
            reports[lab].problems += test_inputs(source, bundle.tests, bundle.aliases)
            shipped = repo.release_notebook(lab) if repo.release_notebook(lab).is_file() else fresh.release_notebook(lab)
            reports[lab].problems += [f"the release states a result: {leak}" for leak in
                                      leaked_results(source, nbformat.reads(release, as_version=4))]
            notebooks = {REFERENCE: source, UNTOUCHED: nbformat.read(shipped, as_version=4)}
            notebooks.update({f"mistake_{m.name}": repo.notebook_with_mistake(lab, m) for m in repo.mistakes(lab)})
            for student, nb in notebooks.items():
                jobs[lab, student] = GradeJob(
                    lab=lab, student=student, submission=nbformat.writes(nb).encode(), release=release,
                    tests=bundle.tests, aliases=bundle.aliases, limits=limits, env=kernel_env(),
                    denied=[str(repo.root)], threads=pool.threads, isolated=pool.isolated)
    results: dict[tuple[str, str], SubmissionResult] = {}
    keys = {f"{lab}-{student}": (lab, student) for lab, student in jobs}
    pool.run({name: jobs[key] for name, key in keys.items()},
             lambda name, result: results.__setitem__(keys[name], as_submission_result(*keys[name], result)))
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
        report.problems += [f"the solution loses points in {t}: {ref.messages.get(t, '')}" for t in sorted(ref.lost())]
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
