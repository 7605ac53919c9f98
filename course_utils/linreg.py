"""Least squares on real tabular data, and gradient descent on it at many learning rates at once.

The plumbing of feature_scaling: the diabetes data that ships with scikit-learn (in its raw units), the
loss f(w, b) = mean((X w + b - y)^2) / 2, gradient descent on it for a whole grid of learning rates in one
run, the largest learning rate of such a grid that does not diverge, and the hidden features of a random
ReLU layer, on which a network's last layer solves the same least-squares problem.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


class Regression(NamedTuple):
    """A regression dataset: `X, y, feature_names = data`."""

    X: torch.Tensor  # (n, d) features, one row per example
    y: torch.Tensor  # (n,) targets
    feature_names: list[str]


DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def _diabetes_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The raw diabetes arrays (data, target): read straight from the files scikit-learn ships, where they are,
    without importing scikit-learn (seconds in a fresh kernel); else through its public loader."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data" if spec and spec.submodule_search_locations else None
    if folder is not None and (folder / "diabetes_data_raw.csv.gz").is_file() and (folder / "diabetes_target.csv.gz").is_file():
        return np.loadtxt(folder / "diabetes_data_raw.csv.gz"), np.loadtxt(folder / "diabetes_target.csv.gz")
    from sklearn.datasets import load_diabetes as sklearn_diabetes

    bunch = sklearn_diabetes(scaled=False)  # scaled=True would hand over features already centred and scaled
    return np.asarray(bunch.data), np.asarray(bunch.target)


def load_diabetes(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Regression:
    """The diabetes data of Efron, Hastie, Johnstone and Tibshirani (2004), in its original units.

    442 patients, 10 baseline measurements (age in years, sex coded 1 or 2, body-mass index, mean blood
    pressure and six blood serum measurements) and, as the target, a measure of disease progression one
    year later. The files ship inside scikit-learn (what `sklearn.datasets.load_diabetes(scaled=False)`
    returns), so nothing is downloaded. Used by feature_scaling.
    """
    data, target = _diabetes_arrays()
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64)).to(device=device, dtype=dtype)
    return Regression(as_tensor(data), as_tensor(target), list(DIABETES_FEATURES))


def with_intercept(X: torch.Tensor) -> torch.Tensor:
    """`X` with a last column of ones, so that the intercept b is one more weight: [X, 1] @ [w; b] = X w + b."""
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1)


def least_squares_loss(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor | float = 0.0) -> torch.Tensor:
    """f(w, b) = mean((X w + b - y)^2) / 2 for one weight vector (d,) or a stack of them (k, d) with b of shape (k,)."""
    b = torch.as_tensor(b, dtype=X.dtype, device=X.device)
    residual = w @ X.T + b[..., None] - y if w.dim() == 2 else X @ w + b - y
    return 0.5 * (residual**2).mean(dim=-1)


def minimum_loss(X: torch.Tensor, y: torch.Tensor, intercept: bool = True) -> float:
    """The smallest value of the least-squares loss, from NumPy's `lstsq` in float64 (the reference for GD)."""
    A = with_intercept(X) if intercept else X
    A, t = A.detach().cpu().double().numpy(), y.detach().cpu().double().numpy()
    theta = np.linalg.lstsq(A, t, rcond=None)[0]
    return float(0.5 * np.mean((A @ theta - t) ** 2))


class GDRun(NamedTuple):
    """Gradient descent at k learning rates: `losses[i, t]` is the loss of run i after t steps (t = 0 is the start)."""

    lrs: torch.Tensor  # (k,)
    losses: torch.Tensor  # (k, num_steps + 1)
    w: torch.Tensor  # (k, d) final weights
    b: torch.Tensor  # (k,) final intercepts (zeros without an intercept)


def gradient_descent(X: torch.Tensor, y: torch.Tensor, lrs: Sequence[float] | torch.Tensor, num_steps: int,
                     intercept: bool = True, progress: bool = True, desc: str = "gradient descent") -> GDRun:
    """Full-batch gradient descent on f(w, b) = mean((X w + b - y)^2) / 2 from w = 0, b = 0, one run per learning rate.

    All runs advance together as one (k, p) stack of parameters theta = [w; b]. The gradient
    (1/n) A^T (A theta - y) with A = [X, 1] equals G theta - g with G = A^T A / n and g = A^T y / n, so G and g
    are computed once and a step costs O(k p^2) whatever the number of examples; the loss is
    theta^T G theta / 2 - g^T theta + mean(y^2) / 2. Runs that diverge overflow to inf or NaN and are kept.
    Without `intercept`, b stays 0. Used by feature_scaling.
    """
    A = with_intercept(X) if intercept else X
    n, p = A.shape
    G, g, c = A.T @ A / n, A.T @ y / n, 0.5 * (y @ y) / n
    lrs = torch.as_tensor(lrs, dtype=X.dtype, device=X.device).reshape(-1)
    theta = torch.zeros(len(lrs), p, dtype=X.dtype, device=X.device)
    losses = torch.empty(len(lrs), num_steps + 1, dtype=X.dtype, device=X.device)
    with torch.no_grad(), _one_cpu_thread():
        for t in tqdm(range(num_steps + 1), desc=desc, unit="step", disable=not progress, leave=False):
            grad_part = theta @ G
            losses[:, t] = 0.5 * (grad_part * theta).sum(dim=1) - theta @ g + c
            if t < num_steps:
                theta = theta - lrs[:, None] * (grad_part - g)
    w, b = (theta[:, :-1], theta[:, -1]) if intercept else (theta, torch.zeros_like(lrs))
    return GDRun(lrs, losses, w, b)


@contextmanager
def _one_cpu_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block: a step here is a few products of matrices with at most a few
    thousand entries, where more threads only add synchronization (much more on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def diverged(losses: torch.Tensor) -> torch.Tensor:
    """Which runs (rows of `losses`) diverged: the last loss is not finite or exceeds the starting loss."""
    last, first = losses[:, -1], losses[:, 0]
    return ~torch.isfinite(last) | (last > first)


def largest_stable_lr(X: torch.Tensor, y: torch.Tensor, low: float, high: float, num_steps: int,
                      intercept: bool = True, per_decade: int = 8, refine: int = 41, progress: bool = True) -> float:
    """The largest learning rate in [low, high] at which `num_steps` of gradient descent do not diverge, measured.

    A geometric grid with `per_decade` rates per decade finds the last stable rate; a linear grid of `refine`
    rates between it and the next one of the coarse grid pins it down (to about 0.8 % with the defaults).
    Stability is judged only from the runs' losses (`diverged`), never from the Hessian. Returns NaN if
    even `low` diverges. Used by feature_scaling.
    """
    num = max(2, int(round(per_decade * math.log10(high / low))) + 1)
    grid = torch.logspace(math.log10(low), math.log10(high), num, dtype=torch.float64).tolist()
    coarse = gradient_descent(X, y, grid, num_steps, intercept, progress, desc="coarse grid")
    stable = (~diverged(coarse.losses)).nonzero().flatten().tolist()
    if not stable:
        return float("nan")
    last = max(stable)
    if last == len(grid) - 1:
        return grid[-1]
    fine = torch.linspace(grid[last], grid[last + 1], refine, dtype=torch.float64).tolist()
    run = gradient_descent(X, y, fine, num_steps, intercept, progress, desc="fine grid")
    stable = (~diverged(run.losses)).nonzero().flatten().tolist()
    return fine[max(stable)] if stable else grid[last]


def relu_features(X: torch.Tensor, width: int, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Hidden features ReLU(scale * (X W^T + c)) of a random layer, shape (n, width), as a network computes them.

    W and c are drawn from the law of PyTorch's default initialization of `torch.nn.Linear(d, width)`
    (uniform in [-1/sqrt(d), 1/sqrt(d)]) with a private generator seeded by `seed`, then multiplied by
    `scale`, so `scale` sets the size of the hidden layer's output without changing which units fire.
    Used by feature_scaling.
    """
    gen = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(X.shape[1])  # nn.Linear draws weight and bias uniformly in [-1/sqrt(d), 1/sqrt(d)]
    W = (torch.rand(width, X.shape[1], generator=gen, dtype=torch.float64) * 2 - 1) * bound
    c = (torch.rand(width, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    W, c = (scale * t.to(device=X.device, dtype=X.dtype) for t in (W, c))
    return torch.relu(X @ W.T + c)
