"""Time the vectorized sweep against the best form of the one-model-at-a-time loop, side by side, and rate its
arithmetic against the machine's matrix-multiply peak measured in the same run.

The baseline is the per-model reference loop (`cu.sweep.train_one`) run the way it runs fastest: one torch thread
per process (its operations are too small to gain from more) and one process per core, each process training its
share of the models. The vectorized sweep (`cu.sweep.sweep`) runs in this process, timed on one thread and on
torch's default number of threads. Both train the same slice of mlp_depth_sweep's grid; their order alternates over `--repeats` rounds and each
round is reported. The arithmetic rate counts the floating-point operations of the matrix products (forward,
backward and the whole-dataset evaluations, for the epochs each model actually trained) and divides them by the
wall time; the peak is the best float32 `torch.mm` rate of large square matrices, on all cores (the machine's
peak) and on the sweep's threads.

Run from the repository root, e.g. `COURSE_DATA_ROOT=../shared/datasets python benchmarks/bench_mlp_depth_sweep.py`.
`--full-grid` also times the lab's full default grid with the vectorized engine. Prints the load average at start
and end, since timings on a shared machine move with it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import torch

import course_utils as cu

FULL_DEPTHS = [1, 2, 3, 4, 5, 6, 7, 8, 10, 25, 50]
FULL_LRS = torch.logspace(-4, 1, 11).tolist()
SEEDS = (0, 1)  # the lab trains every cell of its grid from two seeds
WIDTH, CLASSES, BATCH = 64, 10, 32

_DATA = None  # each worker's copy of the data


def _load_worker() -> None:
    global _DATA
    torch.set_num_threads(1)
    _DATA = cu.data.load_fashion_mnist()


def _train(job: tuple) -> cu.sweep.Run:
    X, y, X_test, y_test = _DATA
    batchnorm, depth, lr, seed, epochs = job
    return cu.sweep.train_one(X, y, depth, batchnorm, lr, seed, epochs, BATCH, WIDTH, CLASSES, X_test, y_test)


def _ready(_: int) -> int:
    return os.getpid()


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 rate of an n x n matrix product with `threads` torch threads, in GFLOP/s."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    torch.set_num_threads(before)
    return 2 * n ** 3 / best / 1e9


def sweep_flops(runs: list[cu.sweep.Run], n_train: int, n_test: int, in_features: int) -> float:
    """Floating-point operations of the matrix products of training and evaluating `runs` (each for the epochs it
    trained): per example, 2 per weight forward, 2 for the weight gradient, 2 for the input gradient (not of the
    first layer); plus a forward pass over the training set to calibrate, after each epoch, and over the test set."""
    total = 0.0
    for run in runs:
        first = in_features * WIDTH
        weights = first + (run.depth - 1) * WIDTH * WIDTH + WIDTH * CLASSES
        epochs = len(run.losses) - 1
        total += n_train * epochs * (2 * weights + 2 * weights + 2 * (weights - first))  # SGD steps
        total += 2 * weights * (n_train * (epochs + 2) + n_test)  # calibration, evaluations, test set
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=[1, 4, 10, 25])
    p.add_argument("--epochs", type=int, default=3, help="epochs per model (the lab trains 3)")
    p.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds per grid cell (the lab uses 2)")
    p.add_argument("--processes", type=int, default=os.cpu_count(), help="processes of the loop (default: one per core)")
    p.add_argument("--sweep-threads", type=int, nargs="+", default=None,
                   help="torch threads of the vectorized sweep, each timed (default: 1 and torch's default)")
    p.add_argument("--repeats", type=int, default=1, help="rounds of (loop, vectorized), alternating which goes first")
    p.add_argument("--full-grid", action="store_true", help="also time the lab's full default grid (3 epochs)")
    args = p.parse_args()
    X, y, X_test, y_test = cu.data.load_fashion_mnist()
    default_threads = torch.get_num_threads()
    sweep_threads = args.sweep_threads or sorted({1, default_threads})
    print(f"{len(X)} training images, {os.cpu_count()} CPUs; loop on {args.processes} process(es) x 1 torch thread, "
          f"vectorized sweep on {' and '.join(map(str, sweep_threads))} thread(s); load average "
          f"{os.getloadavg()[0]:.1f} at start")
    grid = dict(depths=args.depths, lrs=FULL_LRS, seeds=range(args.seeds), num_epochs=args.epochs)
    jobs = [(bn, d, lr, s, args.epochs) for bn in (False, True) for d in args.depths for lr in FULL_LRS
            for s in range(args.seeds)]
    print(f"slice: depths {args.depths} x {len(FULL_LRS)} learning rates x {args.seeds} seed(s) x with/without "
          f"BatchNorm = {len(jobs)} models, {args.epochs} epoch(s)")
    peak_all = matmul_peak(default_threads)
    peaks = {t: matmul_peak(t) for t in sweep_threads}
    print("float32 matmul peak: " + ", ".join(f"{peaks[t]:.1f} GFLOP/s on {t} thread(s)" for t in sweep_threads)
          + f"; the machine's ({default_threads} threads): {peak_all:.1f} GFLOP/s")
    ctx = mp.get_context("spawn")
    loop_s, fast_s, rates = [], {t: [] for t in sweep_threads}, {t: [] for t in sweep_threads}
    with ctx.Pool(args.processes, initializer=_load_worker) as pool:
        pool.map(_ready, range(args.processes))  # workers started, data loaded: not timed
        for round_ in range(args.repeats):
            order = ["loop", *sweep_threads]
            for which in (order if round_ % 2 == 0 else order[::-1]):
                start = time.perf_counter()
                if which == "loop":
                    loop_runs = pool.map(_train, jobs, chunksize=1)
                    loop_s.append(time.perf_counter() - start)
                    continue
                torch.set_num_threads(which)
                runs = cu.sweep.sweep(X, y, X_test=X_test, y_test=y_test, progress=False, **grid)
                fast_s[which].append(time.perf_counter() - start)
                rates[which].append(sweep_flops(runs, len(X), len(X_test), X.shape[1]) / fast_s[which][-1] / 1e9)
            torch.set_num_threads(default_threads)
            print(f"round {round_ + 1}: loop {loop_s[-1]:.1f} s; " + "; ".join(
                f"vectorized on {t} thread(s) {fast_s[t][-1]:.1f} s ({loop_s[-1] / fast_s[t][-1]:.2f}x faster, "
                f"{rates[t][-1]:.2f} GFLOP/s)" for t in sweep_threads) + f" (load average {os.getloadavg()[0]:.1f})")
    agree = sum(abs(a.final_loss - b.final_loss) <= 1e-3 * abs(b.final_loss) + 1e-4 or (a.final_loss != a.final_loss
                and b.final_loss != b.final_loss) for a, b in zip(runs, loop_runs))
    loop = statistics.median(loop_s)
    print(f"median over {args.repeats} round(s): loop {loop:.1f} s")
    for t in sweep_threads:
        fast, rate = statistics.median(fast_s[t]), statistics.median(rates[t])
        print(f"  vectorized on {t} thread(s): {fast:.1f} s, {loop / fast:.2f}x faster than the loop; {rate:.2f} GFLOP/s "
              f"= {100 * rate / peak_all:.1f} % of the machine's matmul peak ({100 * rate / peaks[t]:.1f} % of the "
              f"peak on {t} thread(s))")
    print(f"final losses of the loop and the last vectorized run agree (0.1 %) for {agree} of {len(runs)} models")
    if args.full_grid:
        start = time.perf_counter()
        cu.sweep.sweep(X, y, FULL_DEPTHS, FULL_LRS, seeds=SEEDS, num_epochs=3, X_test=X_test, y_test=y_test,
                       progress=False)
        print(f"full default grid ({len(FULL_DEPTHS) * len(FULL_LRS) * len(SEEDS) * 2} models, 3 epochs), "
              f"vectorized on {torch.get_num_threads()} thread(s): {time.perf_counter() - start:.0f} s")
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
