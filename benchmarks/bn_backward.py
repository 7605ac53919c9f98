"""Node-by-node vs compact batch-norm backward pass of the bn_from_scratch solution, timed side by side.

Run from the repository root: `python benchmarks/bn_backward.py`. The functions are read from the solution
cells of the source notebook, so the benchmark times exactly what the lab teaches. The two versions alternate
within each repeat, so that both see the same load on a shared machine; the best of the repeats is kept, and
only their ratio is worth quoting.
"""

from __future__ import annotations

import timeit
from pathlib import Path

import nbformat
import numpy as np

NOTEBOOK = Path(__file__).resolve().parents[1] / "source" / "bn_from_scratch" / "bn_from_scratch.ipynb"
CELLS = ("bn_forward", "bn_backward_nodes", "bn_backward_compact")
SHAPES = [(64, 64), (256, 256), (512, 1024), (2048, 1024)]


def solution_functions() -> dict:
    """Execute the notebook's BN solution cells and return their namespace."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    namespace = {"np": np}
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in CELLS:
            exec(cell.source, namespace)
    return namespace


def main(repeats: int = 15) -> None:
    ns = solution_functions()
    rng = np.random.default_rng(0)
    print(f"{'N x D':>12}  {'node by node':>13}  {'compact':>9}  ratio")
    for n, d in SHAPES:
        x, dout = rng.normal(1.0, 2.0, size=(n, d)), rng.normal(size=(n, d))
        _, cache = ns["bn_forward"](x, rng.uniform(0.5, 2.0, size=d), rng.normal(size=d))
        number = max(1, 2_000_000 // (n * d))
        runs = {name: [] for name in CELLS[1:]}
        for _ in range(repeats):
            for name in CELLS[1:]:
                backward = ns[name]
                runs[name].append(timeit.timeit(lambda: backward(dout, cache), number=number) / number)
        best = {name: min(times) for name, times in runs.items()}
        print(f"{f'{n} x {d}':>12}  {1e3 * best['bn_backward_nodes']:10.3f} ms  {1e3 * best['bn_backward_compact']:6.3f} ms"
              f"  {best['bn_backward_nodes'] / best['bn_backward_compact']:.2f}x")


if __name__ == "__main__":
    main()
