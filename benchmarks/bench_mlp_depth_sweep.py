"""Time the vectorized sweep against the one-model-at-a-time loop on the same slice of the mlp_depth_sweep grid.

Run from the repository root, e.g. `COURSE_DATA_ROOT=../shared/datasets python benchmarks/bench_mlp_depth_sweep.py`;
`--full-grid` also times the lab's full default grid with the vectorized engine. Prints the load average,
since timings on a shared machine move with it.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import course_utils as cu

FULL_DEPTHS = [1, 2, 3, 4, 5, 6, 7, 8, 10, 25, 50]
FULL_LRS = torch.logspace(-4, 1, 11).tolist()
SEEDS = (0, 1)  # the lab trains every cell of its grid from two seeds


def timed(**kwargs) -> float:
    start = time.perf_counter()
    cu.sweep.sweep(progress=False, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=[1, 4, 10, 25])
    p.add_argument("--epochs", type=int, default=3, help="epochs per model (the lab trains 3)")
    p.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds per grid cell (the lab uses 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--full-grid", action="store_true", help="also time the lab's full default grid (3 epochs)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y, X_test, y_test = cu.data.load_fashion_mnist()
    print(f"{len(X)} training images, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    grid = dict(X=X, y=y, depths=args.depths, lrs=FULL_LRS, seeds=range(args.seeds), num_epochs=args.epochs,
                X_test=X_test, y_test=y_test)
    loop = timed(vectorized=False, **grid)
    fast = timed(vectorized=True, **grid)
    models = len(args.depths) * len(FULL_LRS) * args.seeds * 2
    print(f"slice: depths {args.depths} x {len(FULL_LRS)} learning rates x {args.seeds} seed(s) x with/without "
          f"BatchNorm = {models} models, {args.epochs} epoch(s)")
    print(f"per-model loop {loop:.1f} s, vectorized {fast:.1f} s: vectorized is {loop / fast:.1f}x faster")
    if args.full_grid:
        full = timed(X=X, y=y, depths=FULL_DEPTHS, lrs=FULL_LRS, seeds=SEEDS, num_epochs=3, X_test=X_test, y_test=y_test)
        print(f"full default grid ({len(FULL_DEPTHS) * len(FULL_LRS) * len(SEEDS) * 2} models, 3 epochs), "
              f"vectorized: {full:.0f} s")
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
