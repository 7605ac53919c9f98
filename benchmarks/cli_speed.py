"""How long the `course` commands that need no kernel take, side by side with starting Python itself.

    python benchmarks/cli_speed.py [--repeat 5]

Runs, in one session and interleaved, `python -c pass` (the floor any command pays), `course --help`, an
argument error (`course grade` without a lab), `course grade LAB` with nothing submitted, and `course export` of
an empty gradebook, in a scratch course folder; prints each one's median wall time and its ratio to the floor.
The first three import only the standard library; the last two load nbgrader to read the course's
configuration and gradebook, and start no grading worker.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = "conv_shapes"


def course_command() -> list[str]:
    script = Path(sys.executable).parent / "course"
    return [str(script)] if script.exists() else [sys.executable, "-m", "course_utils.grading.cli"]


def scratch_course(root: Path) -> Path:
    """A course folder with the repository's configuration, one lab's source and no submissions."""
    (root / "source" / LAB).mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copy(REPO / "source" / LAB / f"{LAB}.ipynb", root / "source" / LAB / f"{LAB}.ipynb")
    with open(root / "nbgrader_config.py", "a") as f:
        f.write(f"\nc.CourseDirectory.db_url = 'sqlite:///{root / 'gradebook.db'}'\n")
    return root


def wall(command: list[str], cwd: Path, expect: int) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}, not {expect}:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="runs of each command (median reported)")
    args = p.parse_args()
    course = course_command()
    with tempfile.TemporaryDirectory(prefix="cli-speed-") as tmp:
        root = scratch_course(Path(tmp) / "course")
        cases = {  # name -> (command, expected exit status)
            "python -c pass": ([sys.executable, "-c", "pass"], 0),
            "course --help": (course + ["--help"], 0),
            "argument error": (course + ["grade"], 2),
            "nothing to grade": (course + ["grade", LAB], 1),
            "export (empty gradebook)": (course + ["export"], 0),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeat):  # interleaved, so that a change in the machine's load hits every case alike
            for name, (command, expect) in cases.items():
                times[name].append(wall(command, root, expect))
    floor = statistics.median(times["python -c pass"])
    print(f"{'command':<26} {'median s':>9} {'x python -c pass':>17}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<26} {median:>9.3f} {median / floor:>17.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
