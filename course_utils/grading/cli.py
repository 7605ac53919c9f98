"""The instructor's command line: `course release|validate|mutants|grade|extend|feedback|export|bundle|demo`.

Only the standard library and the result model are imported here: nbgrader, Dask and torch load inside the
command that needs them, so `course --help` and a mistyped argument answer at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..runtime import QUICK_ENV
from .escape import for_terminal
from .results import GradingInterrupted, Status, SubmissionOutcome

if TYPE_CHECKING:
    from .course import Course
    from .mutants import MutationReport

DEMO_STUDENTS = ("solution", "untouched", "typical_mistake")
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, as a shell reports Ctrl-C
EXIT_HANGUP = 128 + signal.SIGHUP  # 129
# Optional jsonschema extra that compiles an IRI grammar on import (2 s); nbformat's schemas check no IRI format
UNUSED_SLOW_IMPORTS = ("rfc3987_syntax",)


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain-text table with left-aligned columns; every cell escaped for the terminal."""
    cells = [headers] + [[for_terminal(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def lines_for_terminal(text: str) -> str:
    """Multi-line text (a summary, an error with nbgrader's log) with each line escaped for the terminal."""
    return "\n".join(for_terminal(line, 2000) for line in text.splitlines())


def points(value: float) -> str:
    return f"{value:g}"


def open_course(args: argparse.Namespace) -> "Course":
    from .course import Course

    return Course(args.course_dir)


def cmd_release(args: argparse.Namespace) -> int:
    course = open_course(args)
    for lab in course.check_labs(args.labs):
        course.release(lab)
        print(f"released {lab} -> {course.release_notebook(lab).relative_to(course.root)}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .pool import GradingPool
    from .validation import validate

    course = open_course(args)
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
            print(lines_for_terminal(f"  {r.lab}: {problem}"))
    failed = [r.lab for r in reports if not r.ok]
    print(f"validate: {len(reports) - len(failed)} passed, {len(failed)} failed "
          f"in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


def mutation_cell(report: "MutationReport") -> str:
    return f"{len(report.killed)}/{report.counted} ({report.score:.0%})"


def cmd_mutants(args: argparse.Namespace) -> int:
    from .mutants import threshold
    from .pool import GradingPool
    from .validation import mutants_only

    course = open_course(args)
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
    from .classroom import default_limits, grade_lab
    from .export import late_penalties, write_grades
    from .jobs import Limits

    course = open_course(args)
    (lab,) = course.check_labs([args.lab])
    defaults = default_limits(course)
    limits = Limits(cell_s=args.cell_timeout or defaults.cell_s, submission_s=args.timeout or defaults.submission_s,
                    memory_mb=args.memory or defaults.memory_mb)
    where = f"the Dask scheduler at {args.scheduler}" if args.scheduler else f"{args.workers} local worker(s)"
    who = f" for {', '.join(args.student)}" if args.student else ""
    print(f"grading {lab}{for_terminal(who)} on {where}{isolation_note(args)}; limits: {limits.cell_s} s per cell, "
          f"{limits.submission_s} s per submission, {limits.memory_mb} MiB", flush=True)
    try:
        outcomes = grade_lab(course, lab, args.student, workers=args.workers, scheduler=args.scheduler,
                             isolated=not args.no_isolation, limits=limits, force=args.force or bool(args.student))
    except GradingInterrupted:
        write_grades(course)  # the finished submissions' rows, as recorded
        raise
    print(grade_table(lab, outcomes, late_penalties(course, lab)))
    summary = course.root / "grading" / lab
    print("\n" + lines_for_terminal((summary / "summary.md").read_text().strip()))
    print(f"\ngrades: {write_grades(course)}\nfeedback: {course.feedback_page(lab, '<student>')}"
          f"\nsummary: {summary / 'summary.md'}, chart: {summary / 'failed_tests.png'}")
    machine = sum(o.status is Status.MACHINE_FAILURE for o in outcomes)
    if machine:  # the run is not done: a script or CI must not take it for a finished grading
        print(f"course grade: {machine} submission(s) not graded because of the grading machine: run `course grade "
              f"{lab}` again", file=sys.stderr)
        return 1
    return 0


def grade_table(lab: str, outcomes: list[SubmissionOutcome], penalties: dict[str, float]) -> str:
    """One row per student: status, autograded points, late penalty, and what the points alone do not say."""
    rows = []
    for o in outcomes:
        graded = o.status is Status.GRADED
        details = [f"tests failed: {', '.join(sorted(o.lost())) or 'none'}" if graded else str(o.failure)]
        details += [str(n) for n in o.notes]
        if not o.isolated:
            details.append("[graded WITHOUT a sandbox]")
        if o.reused:
            details.append("unchanged since the last run")
        penalty = penalties.get(o.student)
        rows.append([o.student, o.status.value,
                     f"{points(o.auto_score)}/{points(o.max_auto_score)}" if graded else "-",
                     f"-{points(penalty)}" if penalty else "", "; ".join(details)])
    return table(["student", "status", "autograded points", "late penalty", "details"], rows)


def cmd_extend(args: argparse.Namespace) -> int:
    from .classroom import set_extension
    from .course import CourseError
    from .submissions import parse_date

    course = open_course(args)
    (lab,) = course.check_labs([args.lab])
    try:
        until = None if args.until.strip().lower() == "none" else parse_date(args.until, "UNTIL")
    except ValueError as err:
        raise CourseError(str(err)) from None
    if until is None and args.until.strip().lower() != "none":
        raise CourseError("UNTIL is empty: give a date, or `none` to take the extension back.")
    set_extension(course, lab, args.student, until)
    print(f"{for_terminal(args.student)} may submit {lab} until {until:%Y-%m-%d %H:%M:%S} UTC; late penalty updated"
          if until else f"{for_terminal(args.student)}'s extension of {lab} taken back; late penalty updated")
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from .handback import return_feedback

    course = open_course(args)
    (lab,) = course.check_labs([args.lab])
    pages = return_feedback(course, lab, args.student)
    for page in pages:
        print(for_terminal(page.relative_to(course.root), 500))
    print(f"feedback: {len(pages)} page(s) of {lab} written")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import write_grades

    course = open_course(args)
    print(f"grades: {write_grades(course, args.path)}")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from .bundle import write_bundle
    from .course import CourseError

    try:
        dest = write_bundle(open_course(args), Path(args.dest))
    except (FileExistsError, FileNotFoundError) as err:  # an existing folder, a lab not released
        raise CourseError(str(err)) from None
    print(f"student bundle: {dest}")
    return 0


def demo_problems(course: "Course", lab: str, outcomes: dict[str, SubmissionOutcome]) -> list[str]:
    """What is wrong with a lab's three reference students: the solution must earn everything, the untouched
    release nothing, the typical mistake exactly the points of the tests not aimed at it."""
    problems = [f"{lab}: {student} could not be graded: {o.failure}" for student, o in outcomes.items() if o.failure]
    graded = {student: o for student, o in outcomes.items() if o.status is Status.GRADED}
    solution, untouched, typical = (graded.get(s) for s in DEMO_STUDENTS)
    if solution and solution.lost():
        problems.append(f"{lab}: the solution loses {', '.join(sorted(solution.lost()))}")
    if untouched and untouched.auto_score > 0:
        problems.append(f"{lab}: the untouched release earns {points(untouched.auto_score)} points")
    mistakes = course.mistakes(lab)
    if mistakes and typical and typical.lost() != mistakes[0].loses:
        problems.append(f"{lab}: the typical mistake should lose exactly {sorted(mistakes[0].loses)} but loses "
                        f"{sorted(typical.lost())}")
    return problems


def cmd_demo(args: argparse.Namespace) -> int:
    import nbformat

    from .classroom import grade_lab
    from .course import Course
    from .export import late_penalties, write_grades
    from .pool import GradingPool

    repo = open_course(args)
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
            tables.append(grade_table(lab, outcomes, late_penalties(course, lab)))
            problems += demo_problems(course, lab, {o.student: o for o in outcomes})
    print("\n\n".join(tables))
    print(f"grades: {write_grades(course)}")
    for problem in problems:
        print(f"demo: {problem}", file=sys.stderr)
    return 1 if problems else 0


def no_isolation(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--no-isolation", action="store_true",
                     help="grade without the bubblewrap sandbox (where it cannot run); every grade is marked unsandboxed")


def workers(sub: argparse.ArgumentParser, what: str) -> None:
    sub.add_argument("--workers", type=int, default=os.cpu_count() or 1, help=f"{what} (default: all cores)")


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
    workers(s, "notebooks run at once")
    s.add_argument("--full", action="store_true", help=f"run full experiments instead of setting {QUICK_ENV}=1")
    s.add_argument("--skip-mutants", action="store_true", help="leave out mutation testing (see `course mutants`)")
    no_isolation(s)
    s.set_defaults(run=cmd_validate)

    s = sub.add_parser("mutants", help="mutation testing: which small changes to the solutions the tests miss")
    s.add_argument("labs", nargs="*", help="labs to test (default: all)")
    workers(s, "notebooks run at once")
    no_isolation(s)
    s.set_defaults(run=cmd_mutants, full=False)

    s = sub.add_parser("grade", help="autograde submitted/*/LAB/ in parallel sandboxes, export grades and feedback")
    s.add_argument("lab")
    s.add_argument("--student", nargs="+", metavar="ID",
                   help="grade (or regrade, changed or not) only these students' submissions")
    workers(s, "submissions graded at once on this machine")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on a running Dask cluster, e.g. tcp://10.0.0.5:8786 (default: a local cluster)")
    s.add_argument("--timeout", type=int, default=0,
                   help="seconds one submission may take in all, from the moment its kernel is ready "
                        "(default: 900)")
    s.add_argument("--cell-timeout", type=int, default=0,
                   help="seconds one cell may take (default: ExecutePreprocessor.timeout of nbgrader_config.py)")
    s.add_argument("--memory", type=int, default=0,
                   help="MiB of memory one submission may use, its processes, /tmp and /dev/shm included "
                        "(default: 6144)")
    s.add_argument("--force", action="store_true", help="grade every submission again, changed or not")
    s.add_argument("--full", action="store_true", help=f"run full experiments instead of setting {QUICK_ENV}=1")
    no_isolation(s)
    s.set_defaults(run=cmd_grade)

    s = sub.add_parser("extend", help="give one student a later due date for a lab (late penalties follow, "
                                      "no regrading)")
    s.add_argument("lab")
    s.add_argument("student")
    s.add_argument("until", help="the student's due date, as nbgrader reads dates (UTC unless a zone is given, "
                                 "e.g. '2026-03-10 17:00:00 Europe/Berlin'), or `none` to take the extension back")
    s.set_defaults(run=cmd_extend)

    s = sub.add_parser("feedback", help="rewrite feedback pages from the gradebook, hand grades and comments "
                                        "included (the step after hand grading)")
    s.add_argument("lab")
    s.add_argument("--student", nargs="+", metavar="ID", help="only these students (default: everyone graded)")
    s.set_defaults(run=cmd_feedback)

    s = sub.add_parser("export", help="write grades.csv: one row per student and lab, status and per-cell points")
    s.add_argument("path", nargs="?", type=Path, default=None, help="where to write it (default: grades.csv in "
                                                                    "the course folder)")
    s.set_defaults(run=cmd_export)

    s = sub.add_parser("bundle", help="write what students receive (release notebooks and the answer-free "
                                      "course_utils) to DIR")
    s.add_argument("dest", metavar="DIR")
    s.set_defaults(run=cmd_bundle)

    s = sub.add_parser("demo", help="release, submit three reference students, autograde, print grades")
    s.add_argument("labs", nargs="*", help="labs to include (default: all)")
    s.add_argument("--into", help="course folder to create (default: a new temporary folder)")
    workers(s, "submissions graded at once")
    s.add_argument("--full", action="store_true", help=f"run full experiments instead of setting {QUICK_ENV}=1")
    no_isolation(s)
    s.set_defaults(run=cmd_demo)
    return p


class _Signals:
    """Ctrl-C and a hang-up as KeyboardInterrupt in the main thread, remembering which came, for the exit status.

    The interpreter writes each signal's number to the wake-up pipe before any Python handler runs, so this
    knows even when a grading run had its own handler in place."""

    def __enter__(self) -> "_Signals":
        self.main = threading.current_thread() is threading.main_thread()  # elsewhere signals cannot be handled
        self.read, write = os.pipe()
        for fd in (self.read, write):
            os.set_blocking(fd, False)
        self.write = write
        if self.main:
            self.previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
            self.previous_hup = signal.signal(signal.SIGHUP, self._hang_up)
        return self

    @staticmethod
    def _hang_up(number, frame) -> None:
        raise KeyboardInterrupt

    def exit_status(self) -> int:
        try:
            seen = os.read(self.read, 4096)
        except BlockingIOError:
            seen = b""
        return EXIT_HANGUP if signal.SIGHUP in seen else EXIT_INTERRUPTED

    def __exit__(self, *exc) -> None:
        if self.main:
            signal.signal(signal.SIGHUP, self.previous_hup)
            signal.set_wakeup_fd(self.previous_fd)
        os.close(self.read)
        os.close(self.write)


def _say(text: str) -> None:
    """Print to stderr, each line escaped; after a hang-up the terminal may be gone, and that is no error."""
    try:
        print(lines_for_terminal(text), file=sys.stderr, flush=True)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for name in UNUSED_SLOW_IMPORTS:
        sys.modules.setdefault(name, None)  # its import fails at once, and jsonschema goes on without it
    warnings.filterwarnings("ignore", module="nbgrader")  # nbgrader's SQLAlchemy warnings mean nothing to users
    warnings.filterwarnings("ignore", message=".*not in session.*")
    if args.command != "release" and not getattr(args, "full", False):
        os.environ[QUICK_ENV] = "1"  # grading kernels inherit the quick-run flag
    with _Signals() as signals:
        try:
            from .course import CourseError, find_course_root

            args.course_dir = find_course_root(args.course_dir)
            return args.run(args)
        except CourseError as err:
            _say(f"course {args.command}: {err}")
            return 1
        except GradingInterrupted as stop:
            again = f"course grade {stop.lab}" + (f" --student {' '.join(args.student)}" if args.student else "")
            _say(f"interrupted: {stop.graded} graded, {stop.left} left: run `{for_terminal(again)}` again to finish")
            return signals.exit_status()
        except KeyboardInterrupt:
            _say(f"course {args.command}: interrupted")
            return signals.exit_status()


if __name__ == "__main__":
    sys.exit(main())
