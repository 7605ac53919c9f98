"""Gradient checking: central finite differences in float64 and one relative-error measure.

Two traps decide whether a gradient check means anything. Float32 rounding swamps the finite
differences, so every input is promoted to float64. A constant upstream gradient (all ones) makes
the input gradient of a normalization layer cancel to zero for right and wrong formulas alike, so
checks draw a random upstream gradient (`random_upstream`) and `numerical_gradient_array` warns on
a constant one.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """d f(x) / dx of a scalar function by central differences on a float64 copy of `x`.

    `f` receives the perturbed array, so it must read its input from its argument. Used by
    bn_from_scratch.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + h
        plus = float(f(x))
        x[i] = saved - h
        minus = float(f(x))
        x[i] = saved
        grad[i] = (plus - minus) / (2 * h)
    return grad


def numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """The gradient of sum(f(x) * dout) with respect to `x`: what a backward pass returns for upstream `dout`.

    Warns when `dout` is constant, which hides errors in normalization layers. Used by bn_from_scratch.
    """
    dout = np.asarray(dout, dtype=np.float64)
    if dout.size > 1 and np.ptp(dout) == 0:
        warnings.warn(
            "The upstream gradient is constant; for a normalization layer the input gradient then "
            "cancels to about zero whatever the formula, so this check cannot catch a wrong backward "
            "pass. Use random_upstream(shape) instead.",
            stacklevel=2,
        )
    return numerical_gradient(lambda z: np.sum(np.asarray(f(z), dtype=np.float64) * dout), x, h)


def rel_error(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """||a - b|| / (||a|| + ||b||) over the whole array: 0 when equal, 1 or more when unrelated.

    A norm over the whole array, not entry by entry, so entries that happen to be near zero do not
    turn rounding noise into a false failure. Used by bn_from_scratch.
    """
    a, b = (np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float64) for t in (a, b))
    if a.shape != b.shape:
        raise ValueError(f"Cannot compare arrays of shapes {a.shape} and {b.shape}.")
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def random_upstream(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A standard-normal float64 upstream gradient: the safe choice for a gradient check. Used by bn_from_scratch."""
    return np.random.default_rng(seed).standard_normal(shape)


def error_table(grads: dict[str, dict[str, np.ndarray]]) -> str:
    """A text table of the relative error of every parameter between every pair of gradient sources.

    `grads` maps a source name (e.g. "analytic", "finite differences", "autograd") to its gradients
    by parameter name. Used by bn_from_scratch.
    """
    sources = list(grads)
    params = list(grads[sources[0]])
    pairs = [(s, t) for i, s in enumerate(sources) for t in sources[i + 1:]]
    headers = ["parameter"] + [f"{s} vs {t}" for s, t in pairs]
    rows = [[p] + [f"{rel_error(grads[s][p], grads[t][p]):.1e}" for s, t in pairs] for p in params]
    widths = [max(len(r[i]) for r in [headers] + rows) for i in range(len(headers))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])
