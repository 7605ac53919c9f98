"""Flake hunting: run a lab's tests many times, each with other fresh seeds, and list the seeds that give a verdict
validation would reject (the solution failing a test, a typical mistake losing a test it should keep or keeping
one it should lose).

`course validate` draws new inputs on every run (`cu.testing.fresh_seed`), so a test that the solution fails for one
seed in 400 turns CI red now and then. Repeating tests in the referee would cost a kernel round trip per call, so
`repeat` runs the graded slice once in this process and then each test cell many times in it; `confirm` grades one
notebook the way validation does (sandbox, kernel, referee) with chosen seeds, to show that a seed found here
fails there too. A verdict that is unexpected for every seed is usually this process's limit, not a flake: here
nothing crosses to a kernel, so a test that relies on the referee's copies (a `state_dict()` read before a call) or
on its static checks can decide otherwise; `confirm` shows which.

    python -m course_utils.grading.flakes LAB [--runs N] [--seconds S] [--mistakes] [--test GRADE_ID ...]
    python -m course_utils.grading.flakes LAB --confirm GRADE_ID=SEED[,SEED...] [--mistake NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Iterator

import nbformat

from .. import testing
from ..runtime import QUICK_ENV
from .course import Course, CourseError, find_course_root
from .jobs import GradeJob, Limits, nbgrader_id
from .mutants import graded_slice

SOLUTION = "solution"


@dataclass
class TestRuns:
    """One test run `runs` times: the seeds (one list per run, as `fresh_seed` handed them out) of each run whose
    verdict was not the expected one, with its message."""

    grade_id: str
    should_fail: bool
    runs: int = 0
    seconds: float = 0.0
    unexpected: list[tuple[list[int], str]] = field(default_factory=list)

    def line(self) -> str:
        rate = f"{len(self.unexpected)}/{self.runs}"
        must = "fail" if self.should_fail else "pass"
        text = f"{self.grade_id:38s} must {must}: {rate:>9s} did not ({self.seconds / max(self.runs, 1):.3f} s a run)"
        for seeds, message in self.unexpected[:3]:
            text += f"\n    seeds {','.join(map(str, seeds))}: {message.splitlines()[0][:200] if message else ''}"
        return text


@contextlib.contextmanager
def seeds_for(chosen: dict[str, list[int]]) -> Iterator[dict[str, list[int]]]:
    """Make `cu.testing.fresh_seed` hand the test named `grade_id` the seeds `chosen[grade_id]`, in order (then
    new random ones); every seed handed out is recorded in the dict yielded, by test. A test is known by its
    namespace's `__name__`, which the referee (and `repeat`) set to `test_<grade_id>`."""
    original = testing.fresh_seed
    given: dict[str, list[int]] = {}

    def fresh_seed() -> int:
        name = sys._getframe(1).f_globals.get("__name__", "").removeprefix("test_")
        queue = chosen.get(name, [])
        seed = queue[len(given.get(name, []))] if len(given.get(name, [])) < len(queue) else original()
        given.setdefault(name, []).append(seed)
        return seed

    testing.fresh_seed = fresh_seed
    try:
        yield given
    finally:
        testing.fresh_seed = original


def _tests(nb: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> source of every autograded test cell."""
    return {nbgrader_id(c): c.source for c in nb.cells if c.cell_type == "code" and nbgrader_id(c)
            and c.metadata["nbgrader"].get("grade") and not c.metadata["nbgrader"].get("solution")}


def variants(course: Course, lab: str, mistakes: bool) -> dict[str, tuple[nbformat.NotebookNode, set[str]]]:
    """The solution's graded slice (no test may fail) and, with `mistakes`, each typical mistake's (exactly its
    listed tests must fail), by name."""
    found = {SOLUTION: (graded_slice(nbformat.read(course.source_notebook(lab), as_version=4)), set())}
    if mistakes:
        for mistake in course.mistakes(lab):
            found[mistake.name] = (graded_slice(course.notebook_with_mistake(lab, mistake)), mistake.loses)
    return found


def repeat(nb: nbformat.NotebookNode, should_fail: set[str], runs: int, seconds: float, only: list[str] | None = None,
           base: int = 0) -> list[TestRuns]:
    """Run the notebook's non-test cells once in this process, then each test cell (those in `only`, default all
    that draw fresh seeds) up to `runs` times or for about `seconds`, each run in a copy of the namespace with its
    own seeds (reproducible from `base`)."""
    import torch

    torch.set_num_threads(1)  # as a grading kernel on a machine with one core per worker
    tests = _tests(nb)
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in nb.cells:
            if cell.cell_type == "code" and nbgrader_id(cell) not in tests:
                exec(compile(cell.source, f"<cell {nbgrader_id(cell) or cell.get('id')}>", "exec"), namespace)
    chosen = only or [gid for gid, source in tests.items() if "fresh_seed" in source]
    results = []
    for gid in chosen:
        if gid not in tests:
            raise CourseError(f"No test cell {gid!r} (tests: {', '.join(tests)}).")
        code, record = compile(tests[gid], f"<test {gid}>", "exec"), TestRuns(gid, gid in should_fail)
        start = time.monotonic()
        while record.runs < runs and time.monotonic() - start < seconds:
            draw = random.Random(f"{base}-{gid}-{record.runs}")
            with seeds_for({gid: [draw.getrandbits(56) for _ in range(16)]}) as given, \
                    contextlib.redirect_stdout(io.StringIO()):
                message = None
                try:
                    exec(code, {**namespace, "__name__": f"test_{gid}"})
                except AssertionError as err:
                    message = str(err).strip() or "a check of this test failed"
                except Exception as err:
                    message = f"{type(err).__name__}: {err}"
            record.runs += 1
            if (message is None) == record.should_fail:
                record.unexpected.append((given.get(gid, []), message or "passed"))
        record.seconds = time.monotonic() - start
        results.append(record)
    return results


def confirm(course: Course, lab: str, nb: nbformat.NotebookNode, chosen: dict[str, list[int]]) -> dict[str, str]:
    """Grade `nb` as validation grades it (sandbox, kernel, referee) with the seeds `chosen` for these tests;
    grade_id -> "" where the test passed, else its message."""
    from .classroom import bundle_from, kernel_env
    from .jobs import run_job
    from .resources import close_local_resources

    release = course.release_notebook(lab).read_text()
    bundle = bundle_from(lab, nbformat.read(course.source_notebook(lab), as_version=4), release)
    job = GradeJob(lab=lab, student="flakes", submission=nbformat.writes(nb).encode(), release=release,
                   tests=bundle.tests, aliases=bundle.aliases, limits=Limits(), env=kernel_env(),
                   denied=[str(course.root)])
    try:
        with seeds_for(chosen):
            outcome = run_job(job).outcome
    finally:
        close_local_resources()  # end the zygote this job started, as a grading pool does when it closes
    if outcome.failure is not None:
        raise CourseError(f"{lab} could not be graded: {outcome.failure}")
    return {t.grade_id: ("" if t.passed else t.message or "failed") for t in outcome.tests if t.grade_id in chosen}


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m course_utils.grading.flakes", description=__doc__.split("\n\n")[0])
    parser.add_argument("lab")
    parser.add_argument("--runs", type=int, default=200, help="runs per test (default 200)")
    parser.add_argument("--seconds", type=float, default=60.0, help="at most about this long per test (default 60)")
    parser.add_argument("--test", action="append", help="only this test (repeatable); default: every test that "
                                                        "draws fresh seeds")
    parser.add_argument("--mistakes", action="store_true", help="also every typical mistake of the lab")
    parser.add_argument("--base", type=int, default=0, help="where the reproducible seed sequence starts")
    parser.add_argument("--confirm", action="append", metavar="GRADE_ID=SEED[,SEED...]",
                        help="grade in the sandbox with these seeds for this test instead of repeating")
    parser.add_argument("--mistake", help="with --confirm: grade this typical mistake instead of the solution")
    args = parser.parse_args(argv)
    os.environ.setdefault(QUICK_ENV, "1")  # as `course validate` without --full
    course = Course(find_course_root())
    try:
        found = variants(course, args.lab, mistakes=args.mistakes or bool(args.mistake))
        if args.confirm:
            name = args.mistake or SOLUTION
            if name not in found:
                raise CourseError(f"{args.lab} has no typical mistake {name!r}.")
            chosen = {}
            for item in args.confirm:
                gid, _, seeds = item.partition("=")
                chosen[gid] = [int(s) for s in seeds.split(",") if s]
            verdicts = confirm(course, args.lab, found[name][0], chosen)
            for gid in chosen:
                print(f"{name} {gid}: {verdicts.get(gid, 'no such test') or 'passed'}")
            return 0
        bad = 0
        for name, (nb, should_fail) in found.items():
            print(f"{args.lab}, {name}: runs with an unexpected verdict", flush=True)
            for record in repeat(nb, should_fail, args.runs, args.seconds, args.test, args.base):
                print("  " + record.line(), flush=True)
                bad += len(record.unexpected)
        return 1 if bad else 0
    except CourseError as err:
        print(err, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
