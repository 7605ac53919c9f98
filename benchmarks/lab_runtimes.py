"""How long a student waits for each lab's full run, side by side with how loaded the machine was meanwhile.

    python benchmarks/lab_runtimes.py [--threads N] [LAB ...]

Runs every lab's solution notebook in full (`jupyter nbconvert --execute` on a scratch copy, `COURSE_QUICK`
unset), in the order a student takes them, one after the other; prints each lab's wall time beside the
machine's 1-minute load average when it started and its mean and highest value during the run (sampled every
second). A time measured at a mean load above the number of cores includes other work's share of the CPU and
overstates a student's wait. `--threads` sets OMP_NUM_THREADS (the committed runs use 1); by default torch
picks. Offline, set COURSE_DATA_ROOT.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COURSE_ORDER = ["conv_shapes", "feature_scaling", "bn_train_eval", "bn_from_scratch", "residual_variance",
                "mlp_depth_sweep", "bn_chaos", "norm_layers", "adversarial_spheres", "why_batchnorm_helps",
                "norm_in_practice"]  # each lab's references point back


@dataclass
class Timing:
    """One lab's full run: its wall time and the 1-minute load average before and during it."""

    lab: str
    wall_s: float
    load_start: float
    load_mean: float
    load_max: float


def timed_run(lab: str, env: dict[str, str], scratch: Path) -> Timing:
    """Execute a copy of the lab's source notebook in full, sampling the load average every second meanwhile."""
    notebook = REPO / "source" / lab / f"{lab}.ipynb"
    samples = [os.getloadavg()[0]]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            samples.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
               "--ExecutePreprocessor.timeout=3600", f"--output-dir={scratch}", str(notebook)]
    sampler.start()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
    wall_s = time.perf_counter() - start
    stop.set()
    sampler.join()
    if done.returncode != 0:
        raise SystemExit(f"{lab}: the full run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return Timing(lab, wall_s, samples[0], statistics.fmean(samples), max(samples))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("labs", nargs="*", help="labs to run (default: all, in the course's order)")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the kernels (default: torch's)")
    args = p.parse_args()
    unknown = sorted(set(args.labs) - set(COURSE_ORDER))
    if unknown:
        p.error(f"unknown lab(s) {', '.join(unknown)}; the labs are {', '.join(COURSE_ORDER)}")
    env = {k: v for k, v in os.environ.items() if k != "COURSE_QUICK"}
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
    cores = os.cpu_count() or 1
    print(f"{cores} cores, OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', 'unset')}; 1-minute load average:")
    print(f"{'lab':<20} {'wall s':>7} {'at start':>9} {'mean':>6} {'max':>6}")
    timings = []
    with tempfile.TemporaryDirectory(prefix="lab-runtimes-") as tmp:
        for lab in [lab for lab in COURSE_ORDER if lab in args.labs or not args.labs]:
            t = timed_run(lab, env, Path(tmp))
            timings.append(t)
            print(f"{t.lab:<20} {t.wall_s:>7.0f} {t.load_start:>9.1f} {t.load_mean:>6.1f} {t.load_max:>6.1f}",
                  flush=True)
    total = sum(t.wall_s for t in timings)
    loaded = [t.lab for t in timings if t.load_mean > cores]
    print(f"{'total':<20} {total:>7.0f}   ({total / 60:.1f} minutes)")
    if loaded:
        print(f"mean load above {cores} cores during: {', '.join(loaded)}; those times include other work's share")
    return 0


if __name__ == "__main__":
    sys.exit(main())
