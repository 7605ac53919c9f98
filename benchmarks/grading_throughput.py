"""Throughput of `course grade` against plain sequential `nbgrader autograde` on the same submissions, in one run.

    python benchmarks/grading_throughput.py [--lab conv_shapes] [--students 24] [--workers N [N ...]]

Both graders get identical course copies: the lab released, and `--students` submissions cycling through
the solution, each typical mistake and the untouched release. Prints students per minute for each, the
ratio, the CPU count and the load average before and after (the numbers mean little on a busy machine),
and checks that both graders gave every student the same score. `course grade` runs once per worker count
given (default: 1 and all cores), each on its own course copy, to show how it scales.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from course_utils.grading.course import Course  # noqa: E402


def make_class(dest: Path, lab: str, students: int) -> Course:
    """A course copy with `lab` released and `students` submissions of it."""
    course = Course.copy_of(REPO, dest, [lab])
    course.release(lab)
    kinds = [nbformat.read(course.source_notebook(lab), as_version=4)]
    kinds += [course.notebook_with_mistake(lab, m) for m in course.mistakes(lab)]
    kinds.append(nbformat.read(course.release_notebook(lab), as_version=4))
    for i in range(students):
        course.submit(lab, f"student{i:03d}", kinds[i % len(kinds)])
    return course


def scores(course: Course, lab: str) -> dict[str, float]:
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        return {s.student.id: s.score for s in gb.find_assignment(lab).submissions}


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lab", default="conv_shapes")
    p.add_argument("--students", type=int, default=24)
    p.add_argument("--workers", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    args = p.parse_args()
    env = {**os.environ, "COURSE_QUICK": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        plain = make_class(Path(tmp) / "plain", args.lab, args.students)
        ours = {n: make_class(Path(tmp) / f"course-{n}", args.lab, args.students) for n in args.workers}
        t_plain = timed([sys.executable, "-m", "nbgrader", "autograde", args.lab, "--force"], plain.root, env)
        t_ours = {n: timed([sys.executable, "-m", "course_utils.grading.cli", "--course-dir", str(course.root), "grade",
                            args.lab, "--workers", str(n)], course.root, env) for n, course in ours.items()}
        same = all(scores(plain, args.lab) == scores(course, args.lab) for course in ours.values())
    load_after = os.getloadavg()
    rate = lambda seconds: 60 * args.students / seconds
    print(f"{args.students} submissions of {args.lab} (quick mode), {os.cpu_count()} CPUs, "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"nbgrader autograde, sequential: {t_plain:6.0f} s  {rate(t_plain):5.1f} students/min")
    for n, seconds in t_ours.items():
        print(f"course grade --workers {n}:      {seconds:6.0f} s  {rate(seconds):5.1f} students/min  "
              f"speed-up {t_plain / seconds:.2f}x")
    print(f"same scores from every run: {same}")


if __name__ == "__main__":
    main()
