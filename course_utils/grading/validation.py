"""`course validate`: prove each lab's solution earns full marks, its release none, its typical mistakes and
its mutants lose points, and nothing drifted.

Every notebook is graded the way `course grade` grades a student (same sandbox, same referee), so a lab
that validates is a lab that grades.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from ..runtime import is_quick
from . import claimbands, copycheck
from .classroom import LabBundle, bundle_from, default_limits, kernel_env
from .course import Course, same_release
from .jobs import GradeJob, JobOutput, Limits, defined_names, nbgrader_id
from .mutants import (MutantBatch, MutationReport, equivalents, graded_slice, notebook_mutants, run_batch, threshold,
                      unknown_equivalents, with_mutant)
from .pool import GradingPool
from .referee import free_names
from .results import NoteKind, SubmissionOutcome

REFERENCE, UNTOUCHED, SLICED = "reference", "untouched", "reference_sliced"


@dataclass
class Graded:
    """A notebook as validation graded it: its outcome, and the errors raised by its own (non-test) cells or
    noted in its run (a time limit, a kernel lost)."""

    outcome: SubmissionOutcome
    errors: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, output: JobOutput) -> "Graded":
        errors = []
        if output.notebook:
            nb = nbformat.reads(output.notebook, as_version=4)
            for index, cell in enumerate(nb.cells):
                meta = cell.metadata.get("nbgrader", {})
                if cell.cell_type != "code" or (meta.get("grade") and not meta.get("solution")):
                    continue
                errors += [f"{meta.get('grade_id') or f'cell {index + 1}'}: {o.get('ename')}: {o.get('evalue')}"
                           for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        errors += [str(n) for n in output.outcome.notes if n.kind is not NoteKind.OUTPUT_TRUNCATED]
        return cls(output.outcome, errors)

    @property
    def earns_all(self) -> bool:
        return self.outcome.failure is None and not self.errors and not self.outcome.lost()


@dataclass
class LabReport:
    """Everything `course validate` learned about one lab."""

    lab: str
    reference: SubmissionOutcome | None = None
    untouched: SubmissionOutcome | None = None
    mutation: MutationReport | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


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


@dataclass
class _Lab:
    """A lab as validation grades it: its source, release and bundle."""

    source: nbformat.NotebookNode
    release: str
    bundle: LabBundle


def _prepare(repo: Course, labs: list[str], reports: dict[str, LabReport]) -> dict[str, _Lab]:
    """Release every lab afresh; note a stale release/, tests reading plain cells, results in the release."""
    prepared = {}
    with tempfile.TemporaryDirectory(prefix="validate-release-") as tmp:
        fresh = Course.copy_of(repo.root, Path(tmp), labs)
        for lab in labs:
            fresh.release(lab)
            drift = same_release(fresh.folder("release", lab), repo.folder("release", lab))
            reports[lab].problems += [f"release/ is stale: {d}; run `course release {lab}`" for d in drift]
            source = nbformat.read(repo.source_notebook(lab), as_version=4)
            release = fresh.release_notebook(lab).read_text()
            bundle = bundle_from(lab, source, release)
            reports[lab].problems += test_inputs(source, bundle.tests, bundle.aliases)
            reports[lab].problems += [f"the release states a result: {leak}" for leak in
                                      leaked_results(source, nbformat.reads(release, as_version=4))]
            if not is_quick():  # `--full`: the claims run, so their bands must be their sentences'
                reports[lab].problems += claimbands.notebook_problems(source)
            prepared[lab] = _Lab(source, release, bundle)
    return prepared


def _grade(repo: Course, prepared: dict[str, _Lab], notebooks: dict[tuple[str, str], nbformat.NotebookNode],
           pool: GradingPool, what: str, stop_after_failure: bool = False,
           limits: Limits | None = None) -> dict[tuple[str, str], Graded]:
    """Grade each (lab, student) notebook as `course grade` would, all labs in one queue."""
    limits = limits or default_limits(repo)
    jobs = {f"{lab}-{student}": _job(repo, prepared[lab], student, nb, pool, limits, stop_after_failure)
            for (lab, student), nb in notebooks.items()}
    keys = {f"{lab}-{student}": (lab, student) for lab, student in notebooks}
    results: dict[tuple[str, str], Graded] = {}

    def done(name: str, output: JobOutput) -> None:
        results[keys[name]] = Graded.of(output)
        bar.update()

    with tqdm(total=len(jobs), desc=what, unit="notebook", disable=not jobs) as bar:
        pool.run(jobs, done)
    return results


MUTANT_CELL_S = 60  # a mutant that makes a cell run longer than this has made a test fail


def mutation_reports(repo: Course, prepared: dict[str, _Lab], pool: GradingPool,
                     sliced_reference: dict[str, Graded]) -> dict[str, MutationReport]:
    """Grade every non-equivalent mutant of each lab; a mutant is killed when it loses an autograded test.

    First the mutants of each answer cell are tried together in one kernel against the cells up to the next
    answer (`run_batch`); those that survive, or were not decided, are then graded alone on the whole notebook.
    """
    limits = default_limits(repo)
    limits = type(limits)(cell_s=min(limits.cell_s, MUTANT_CELL_S), submission_s=limits.submission_s,
                          memory_mb=limits.memory_mb, processes=limits.processes)
    reports, batches, chosen, bases = {}, {}, {}, {}
    for lab, item in prepared.items():
        report = MutationReport(lab, equivalent=equivalents(repo, lab))
        report.sliced = lab in sliced_reference and sliced_reference[lab].earns_all
        bases[lab] = graded_slice(item.source) if report.sliced else item.source
        mutants = notebook_mutants(item.source)
        report.problems += unknown_equivalents(report, mutants)
        for mutant in mutants:
            if f"{mutant.cell}: {mutant.key}" not in report.equivalent:
                chosen.setdefault((lab, mutant.cell), []).append(mutant)
        reports[lab] = report
    for (lab, cell), mutants in chosen.items():
        job = _job(repo, prepared[lab], "mutants", bases[lab], pool, limits)
        batches[f"{lab}-{cell}"] = MutantBatch(job, cell, [m.source for m in mutants])
    decided: dict[str, list] = {}

    def done(key: str, killed: list) -> None:
        decided[key] = killed
        bar.update(len(killed))

    with tqdm(total=sum(len(b.sources) for b in batches.values()), desc="mutants", unit="mutant",
              disable=not batches) as bar:
        pool.map(run_batch, batches, done, lambda key, err: [None] * len(batches[key].sources))
    alone = {}
    for (lab, cell), mutants in chosen.items():
        for mutant, killed in zip(mutants, decided.get(f"{lab}-{cell}", [None] * len(mutants))):
            if killed:
                reports[lab].killed.append(mutant)
            else:
                alone[lab, f"mutant_{len(alone)}"] = mutant
    results = _grade(repo, prepared, {key: with_mutant(bases[key[0]], m) for key, m in alone.items()}, pool,
                     "mutants graded alone", stop_after_failure=True, limits=limits)
    for (lab, student), mutant in alone.items():
        result = results.get((lab, student))
        (reports[lab].killed if result is None or result.outcome.lost() else reports[lab].survived).append(mutant)
    return reports


def _job(repo: Course, item: _Lab, student: str, nb: nbformat.NotebookNode, pool: GradingPool, limits: Limits,
         stop_after_failure: bool = False) -> GradeJob:
    return GradeJob(lab=item.bundle.lab, student=student, submission=nbformat.writes(nb).encode(),
                    release=item.release, tests=item.bundle.tests, aliases=item.bundle.aliases, limits=limits,
                    env=kernel_env(), denied=[str(repo.root)], threads=pool.threads, isolated=pool.isolated,
                    stop_after_failure=stop_after_failure)


def mutants_only(repo: Course, labs: list[str], pool: GradingPool) -> dict[str, MutationReport]:
    """`course mutants`: the mutation reports of `labs`, nothing else."""
    reports = {lab: LabReport(lab) for lab in labs}
    prepared = _prepare(repo, labs, reports)
    sliced = _grade(repo, prepared, {(lab, SLICED): graded_slice(p.source) for lab, p in prepared.items()}, pool,
                    "solutions")
    return mutation_reports(repo, prepared, pool, {lab: sliced[lab, SLICED] for lab in labs})


def validate(repo: Course, labs: list[str], pool: GradingPool, mutants: bool = True) -> list[LabReport]:
    """Validate `labs`: grade the solution, the untouched release and every typical mistake of each in `pool`,
    then (with `mutants`) every mutant of its answers; a lab fails below the course's mutation threshold.

    Mistakes are graded on the graded slice (`graded_slice`: no experiment cells), since tests read only what
    answer cells define; a lab whose sliced solution does not earn full marks has its mistakes graded in full.
    """
    reports = {lab: LabReport(lab) for lab in labs}
    prepared = _prepare(repo, labs, reports)
    notebooks: dict[tuple[str, str], nbformat.NotebookNode] = {}
    mistakes = {lab: {f"mistake_{m.name}": repo.notebook_with_mistake(lab, m) for m in repo.mistakes(lab)}
                for lab in prepared}
    for lab, item in prepared.items():
        shipped = repo.release_notebook(lab)
        notebooks[lab, REFERENCE] = item.source
        notebooks[lab, UNTOUCHED] = nbformat.read(shipped, as_version=4) if shipped.is_file() else \
            nbformat.reads(item.release, as_version=4)
        notebooks[lab, SLICED] = graded_slice(item.source)
        notebooks.update({(lab, name): graded_slice(nb) for name, nb in mistakes[lab].items()})
    results = _grade(repo, prepared, notebooks, pool, "solutions, releases, mistakes")
    sliced = {lab: results[lab, SLICED] for lab in prepared if (lab, SLICED) in results}
    unsliceable = [lab for lab in prepared if lab not in sliced or not sliced[lab].earns_all]
    results.update(_grade(repo, prepared, {(lab, name): nb for lab in unsliceable
                                           for name, nb in mistakes[lab].items()}, pool, "mistakes in full"))
    for lab, report in reports.items():
        _judge(repo, report, results)
    for lab in prepared:
        if repo.release_notebook(lab).is_file():  # a missing release is reported above
            reports[lab].problems += copycheck.copyable(repo, lab, pool)
    if mutants:
        needed = threshold(repo)
        for lab, mutation in mutation_reports(repo, prepared, pool, sliced).items():
            reports[lab].mutation = mutation
            reports[lab].problems += mutation.problems
            if mutation.score < needed:
                reports[lab].problems.append(
                    f"the tests kill {mutation.score:.0%} of the mutants, below the course's {needed:.0%}; "
                    f"`course mutants {lab}` lists the {len(mutation.survived)} survivors")
    return list(reports.values())


def _not_graded(graded: Graded) -> list[str]:
    """Why a notebook earned nothing without being judged (the grading itself failed), if it did."""
    failure = graded.outcome.failure
    return [] if failure is None else [f"could not be graded: {failure}"]


def _judge(repo: Course, report: LabReport, results: dict[tuple[str, str], Graded]) -> None:
    ref, untouched = results.get((report.lab, REFERENCE)), results.get((report.lab, UNTOUCHED))
    if ref is not None:
        report.reference = ref.outcome
        report.problems += [f"the solution notebook {e}" for e in _not_graded(ref)]
        report.problems += [f"the solution notebook raised an error in {e}" for e in ref.errors]
        if ref.outcome.max_auto_score == 0:
            report.problems.append("the lab has no autograded tests")
        messages = {t.grade_id: t.message for t in ref.outcome.tests}
        report.problems += [f"the solution loses points in {t}: {messages[t]}" for t in sorted(ref.outcome.lost())]
    if untouched is not None:
        report.untouched = untouched.outcome
        report.problems += [f"the untouched release {e}" for e in _not_graded(untouched)]
        earned = [t.grade_id for t in untouched.outcome.tests if t.autograded and (t.score or 0) > 0]
        report.problems += [f"the untouched release earns points in {t}" for t in earned]
    for mistake in repo.mistakes(report.lab):
        result = results.get((report.lab, f"mistake_{mistake.name}"))
        if result is None:
            continue
        if _not_graded(result):
            report.problems += [f"mistake {mistake.name!r} {e}" for e in _not_graded(result)]
        elif result.outcome.lost() != mistake.loses:
            report.problems.append(f"mistake {mistake.name!r} should lose exactly {sorted(mistake.loses)} but loses "
                                   f"{sorted(result.outcome.lost())}")
