"""The instructor's command line: `course release|validate|grade|demo` (see `course --help`)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nbformat

from ..runtime import QUICK_ENV
from .classroom import GradeOutcome, default_limits, grade_lab, grades_csv
from .course import Course, CourseError, find_course_root
from .jobs import Limits
from .pool import GradingPool
from .mutants import MutationReport, threshold
from .validation import mutants_only, validate

DEMO_STUDENTS = ("solution", "untouched", "typical_mistake")


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain-text table with left-aligned columns."""
    cells = [headers] + [[str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def points(value: float) -> str:
    return f"{value:g}"


def cmd_release(args: argparse.Namespace) -> int:
    course = Course(args.course_dir)
    for lab in course.check_labs(args.labs):
        course.release(lab)
        print(f"released {lab} -> {course.release_notebook(lab).relative_to(course.root)}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    course = Course(args.course_dir)
    labs = course.check_labs(args.labs)
    print(f"validating {', '.join(labs)} with {args.workers} worker(s)"
          f"{'' if args.full else ' in quick mode'}{isolation_note(args)} ...", flush=True)
    start = time.perf_counter()
    with GradingPool(args.workers, isolated=not args.no_isolation) as pool:
        reports = validate(course, labs, pool, mutants=not args.skip_mutants)
    rows = []
    for r in reports:
        ref, untouched = r.reference, r.untouched
        rows.append([
            r.lab,
            f"{ref.runtime_s:.0f} s" if ref else "-",
            f"{points(ref.auto_score)}/{points(ref.max_auto_score)}" if ref else "-",
            points(untouched.auto_score) if untouched else "-",
            len(course.mistakes(r.lab)),
            mutation_cell(r.mutation) if r.mutation else "-",
            "ok" if r.ok else "FAILED",
        ])
    print(table(["lab", "solution runtime", "solution points", "untouched points", "mistakes", "mutants killed",
                 "result"], rows))
    for r in reports:
        for problem in r.problems:
            print(f"  {r.lab}: {problem}")
    failed = [r.lab for r in reports if not r.ok]
    print(f"validate: {len(reports) - len(failed)} passed, {len(failed)} failed "
          f"in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


def mutation_cell(report: MutationReport) -> str:
    return f"{len(report.killed)}/{report.counted} ({report.score:.0%})"


def cmd_mutants(args: argparse.Namespace) -> int:
    course = Course(args.course_dir)
    labs = course.check_labs(args.labs)
    print(f"mutation testing {', '.join(labs)} with {args.workers} worker(s){isolation_note(args)} ...", flush=True)
    start = time.perf_counter()
    with GradingPool(args.workers, isolated=not args.no_isolation) as pool:
        reports = mutants_only(course, labs, pool)
    failed = []
    for lab, report in reports.items():
        print(f"\n{lab}: {mutation_cell(report)} of the mutants killed, {len(report.equivalent)} marked equivalent"
              f"{'' if report.sliced else ' (run on the whole notebook: the graded slice loses points)'}")
        print(table(["answer cell", "killed"], [[cell, f"{k}/{n} ({k / n:.0%})"] for cell, (k, n)
                                                 in report.by_cell().items()]))
        for mutant in report.survived:
            print(f"  survived: {mutant}")
        for problem in report.problems:
            print(f"  {problem}")
        if report.score < threshold(course) or report.problems:
            failed.append(lab)
    print(f"\nmutants: {len(reports) - len(failed)} labs at or above {threshold(course):.0%}, {len(failed)} below, "
          f"in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


def isolation_note(args: argparse.Namespace) -> str:
    return " WITHOUT a sandbox (--no-isolation)" if args.no_isolation else ""


def cmd_grade(args: argparse.Namespace) -> int:
    course = Course(args.course_dir)
    (lab,) = course.check_labs([args.lab])
    defaults = default_limits(course)
    limits = Limits(cell_s=args.cell_timeout or defaults.cell_s, submission_s=args.timeout, memory_mb=args.memory)
    where = f"the Dask scheduler at {args.scheduler}" if args.scheduler else f"{args.workers} local worker(s)"
    print(f"grading {lab} on {where}{isolation_note(args)}; limits: {limits.cell_s} s per cell, "
          f"{limits.submission_s} s per submission, {limits.memory_mb} MiB", flush=True)
    with GradingPool(args.workers, args.scheduler, isolated=not args.no_isolation) as pool:
        outcomes = grade_lab(course, lab, pool=pool, limits=limits, force=args.force)
    print(grade_table(lab, outcomes))
    summary = course.root / "grading" / lab
    print("\n" + (summary / "summary.md").read_text().strip())
    print(f"\ngrades: {grades_csv(course)}\nfeedback: {course.root / 'feedback'}/<student>/{lab}/{lab}.html"
          f"\nsummary: {summary / 'summary.md'}, chart: {summary / 'failed_tests.png'}")
    return 0


def grade_table(lab: str, outcomes: list[GradeOutcome]) -> str:
    rows = []
    for o in outcomes:
        flag = "" if o.isolated else " [graded WITHOUT a sandbox]"
        if o.result is None:
            rows.append([o.student, lab, "-", f"not graded: {o.failure}{flag}"])
        elif o.failure:
            rows.append([o.student, lab, f"0/{points(o.result.max_auto_score)}", f"not graded: {o.failure}{flag}"])
        else:
            lost = ", ".join(sorted(o.result.lost())) or "none"
            notes = "".join(f"; {n}" for n in o.notes)
            rows.append([o.student, lab, f"{points(o.result.auto_score)}/{points(o.result.max_auto_score)}",
                         f"tests failed: {lost}{notes}{flag}"])
    return table(["student", "lab", "autograded points", "details"], rows)


def demo_problems(course: Course, lab: str, outcomes: dict[str, GradeOutcome]) -> list[str]:
    """What is wrong with a lab's three reference students: the solution must earn everything, the untouched
    release nothing, the typical mistake exactly the points of the tests not aimed at it."""
    problems = []
    for student, outcome in outcomes.items():
        if outcome.failure or outcome.result is None:
            problems.append(f"{lab}: {student} could not be graded: {outcome.failure}")
    solution, untouched = outcomes.get("solution"), outcomes.get("untouched")
    if solution and solution.result and solution.result.lost():
        problems.append(f"{lab}: the solution loses {', '.join(sorted(solution.result.lost()))}")
    if untouched and untouched.result and untouched.result.auto_score > 0:
        problems.append(f"{lab}: the untouched release earns {points(untouched.result.auto_score)} points")
    mistakes = course.mistakes(lab)
    typical = outcomes.get("typical_mistake")
    if mistakes and typical and typical.result and typical.result.lost() != mistakes[0].loses:
        problems.append(f"{lab}: the typical mistake should lose exactly {sorted(mistakes[0].loses)} but loses "
                        f"{sorted(typical.result.lost())}")
    return problems


def cmd_demo(args: argparse.Namespace) -> int:
    repo = Course(args.course_dir)
    labs = repo.check_labs(args.labs)
    root = Path(args.into or tempfile.mkdtemp(prefix="course-demo-"))
    course = Course.copy_of(repo.root, root, labs)
    print(f"demo course in {root}{isolation_note(args)}")
    for lab in labs:
        course.release(lab)
        course.submit(lab, "solution", nbformat.read(course.source_notebook(lab), as_version=4))
        course.submit(lab, "untouched", nbformat.read(course.release_notebook(lab), as_version=4))
        mistakes = course.mistakes(lab)
        if mistakes:
            course.submit(lab, "typical_mistake", course.notebook_with_mistake(lab, mistakes[0]))
            print(f"{lab}: typical_mistake {mistakes[0].explanation}")
    tables, problems = [], []
    with GradingPool(args.workers, isolated=not args.no_isolation) as pool:
        for lab in labs:
            outcomes = grade_lab(course, lab, pool=pool)
            tables.append(grade_table(lab, outcomes))
            problems += demo_problems(course, lab, {o.student: o for o in outcomes})
    print("\n\n".join(tables))
    print(f"grades: {grades_csv(course)}")
    for problem in problems:
        print(f"demo: {problem}", file=sys.stderr)
    return 1 if problems else 0


def no_isolation(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--no-isolation", action="store_true",
                     help="grade without the bubblewrap sandbox (where it cannot run); every grade is marked unsandboxed")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="course", description="Release, validate and grade the Batch Norm Labs.")
    p.add_argument("--course-dir", type=Path, default=None,
                   help="course folder holding nbgrader_config.py (default: found from the working directory)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("release", help="generate release/ from source/ with nbgrader")
    s.add_argument("labs", nargs="*", help="labs to release (default: all)")
    s.set_defaults(run=cmd_release)

    s = sub.add_parser("validate", help="solutions earn full marks, releases none, release/ is current")
    s.add_argument("labs", nargs="*", help="labs to validate (default: all)")
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="notebooks run at once (default: all cores)")
    s.add_argument("--full", action="store_true", help=f"run full experiments instead of setting {QUICK_ENV}=1")
    s.add_argument("--skip-mutants", action="store_true", help="leave out mutation testing (see `course mutants`)")
    no_isolation(s)
    s.set_defaults(run=cmd_validate)

    s = sub.add_parser("mutants", help="mutation testing: which small changes to the solutions the tests miss")
    s.add_argument("labs", nargs="*", help="labs to test (default: all)")
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="notebooks run at once (default: all cores)")
    no_isolation(s)
    s.set_defaults(run=cmd_mutants, full=False)

    s = sub.add_parser("grade", help="autograde submitted/*/LAB/ in parallel sandboxes, export grades and feedback")
    s.add_argument("lab")
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="submissions graded at once on this machine (default: all cores)")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on a running Dask cluster, e.g. tcp://10.0.0.5:8786 (default: a local cluster)")
    s.add_argument("--timeout", type=int, default=Limits.submission_s,
                   help=f"seconds one submission may take in all (default: {Limits.submission_s})")
    s.add_argument("--cell-timeout", type=int, default=0,
                   help="seconds one cell may take (default: ExecutePreprocessor.timeout of nbgrader_config.py)")
    s.add_argument("--memory", type=int, default=Limits.memory_mb,
                   help=f"MiB of memory one submission may use, its processes, /tmp and /dev/shm included (default: {Limits.memory_mb})")
    s.add_argument("--force", action="store_true", help="grade every submission again, changed or not")
    s.add_argument("--full", action="store_true", help=f"run full experiments instead of setting {QUICK_ENV}=1")
    no_isolation(s)
    s.set_defaults(run=cmd_grade)

    s = sub.add_parser("demo", help="release, submit three reference students, autograde, print grades")
    s.add_argument("labs", nargs="*", help="labs to include (default: all)")
    s.add_argument("--into", help="course folder to create (default: a new temporary folder)")
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="submissions graded at once (default: all cores)")
    s.add_argument("--full", action="store_true", help=f"run full experiments instead of setting {QUICK_ENV}=1")
    no_isolation(s)
    s.set_defaults(run=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    warnings.filterwarnings("ignore", module="nbgrader")  # nbgrader's SQLAlchemy warnings mean nothing to users
    warnings.filterwarnings("ignore", message=".*not in session.*")
    if args.command != "release" and not args.full:
        os.environ[QUICK_ENV] = "1"  # grading kernels inherit the quick-run flag
    try:
        args.course_dir = find_course_root(args.course_dir)
        return args.run(args)
    except CourseError as err:
        print(f"course {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
