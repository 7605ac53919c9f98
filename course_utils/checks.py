"""Checks that students and autograder tests call: each failure says in words what is wrong.

Every check raises `AssertionError` with a message written for a student and returns nothing
when the answer is right, so a test cell reads as a list of checks.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_type(value: Any, expected: type | tuple[type, ...], name: str) -> None:
    """Fail unless `value` is an instance of `expected` (e.g. a tensor, not a NumPy array)."""
    if not isinstance(value, expected):
        wanted = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        raise AssertionError(f"{name} should be a {wanted}, but it is a {type(value).__name__}.")


def check_shape(actual: Sequence[int] | Array, expected: Sequence[int], name: str) -> None:
    """Fail unless a shape (or an array's shape) equals `expected`; the message names the wrong dimension."""
    got = tuple(actual.shape) if hasattr(actual, "shape") else tuple(actual)
    want = tuple(expected)
    if got == want:
        return
    if len(got) != len(want):
        raise AssertionError(
            f"{name} has {len(got)} dimensions {got} but should have {len(want)}: {want}."
        )
    wrong = [
        f"dimension {i} is {g} instead of {w} ({'too large' if g > w else 'too small'} by {abs(g - w)})"
        for i, (g, w) in enumerate(zip(got, want))
        if g != w
    ]
    raise AssertionError(f"{name} has shape {got} but should have {want}: " + "; ".join(wrong) + ".")


def check_dtype(actual: Array, expected: np.dtype | torch.dtype, name: str) -> None:
    """Fail unless an array has the expected dtype (float32 vs float64 mix-ups are common)."""
    if actual.dtype != expected:
        raise AssertionError(f"{name} has dtype {actual.dtype} but should have dtype {expected}.")


def check_close(
    actual: Array | float,
    expected: Array | float,
    name: str,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """Fail unless `actual` matches `expected` entry by entry; the message gives the worst entry.

    Shapes must match exactly (no broadcasting), and NaN or infinite values are reported as such.
    """
    got, want = _to_numpy(actual).astype(np.float64), _to_numpy(expected).astype(np.float64)
    check_shape(got.shape, want.shape, name)
    if not np.all(np.isfinite(got)):
        bad = int(np.sum(~np.isfinite(got)))
        raise AssertionError(f"{name} contains {bad} NaN or infinite value(s); expected finite numbers.")
    err = np.abs(got - want)
    tol = atol + rtol * np.abs(want)
    if np.all(err <= tol):
        return
    idx = np.unravel_index(int(np.argmax(err - tol)), err.shape) if err.ndim else ()
    where = f" at index {tuple(int(i) for i in idx)}" if idx else ""
    wrong = int(np.sum(err > tol))
    raise AssertionError(
        f"{name} is off{where}: got {got[idx]:.6g}, expected {want[idx]:.6g} "
        f"(difference {err[idx]:.3g}; {wrong} of {err.size} entries are outside the tolerance "
        f"rtol={rtol:g}, atol={atol:g})."
    )


def check_equal(actual: Any, expected: Any, name: str, hint: str = "") -> None:
    """Fail unless `actual == expected` for plain values such as ints, tuples or strings."""
    if actual != expected:
        raise AssertionError(f"{name} is {actual!r} but should be {expected!r}." + (f" {hint}" if hint else ""))


def check_unchanged(before: Array, after: Array, name: str, reason: str) -> None:
    """Fail if a tensor that must stay put (a buffer, an input) was modified."""
    if not np.array_equal(_to_numpy(before), _to_numpy(after)):
        raise AssertionError(f"{name} changed, but it must not: {reason}")


def conv_output_size_reference(n: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """The side length that `torch.nn.Conv2d` produces: floor((n + 2p - d(k - 1) - 1) / s) + 1."""
    return (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


# Wrong versions of the conv output-size formula, each paired with the term a student got wrong.
_CONV_SIZE_SLIPS: list[tuple[str, Callable[[int, int, int, int, int], int]]] = [
    ("the final + 1 is missing", lambda n, k, p, s, d: (n + 2 * p - d * (k - 1) - 1) // s),
    ("the padding is added on one side only; it should be 2 * padding",
     lambda n, k, p, s, d: (n + p - d * (k - 1) - 1) // s + 1),
    ("the dilation is ignored; the kernel spans dilation * (kernel_size - 1) + 1 pixels",
     lambda n, k, p, s, d: (n + 2 * p - (k - 1) - 1) // s + 1),
    ("the - 1 inside the floor is missing", lambda n, k, p, s, d: (n + 2 * p - d * (k - 1)) // s + 1),
    ("the division rounds up; it should round down (floor)",
     lambda n, k, p, s, d: math.ceil((n + 2 * p - d * (k - 1) - 1) / s) + 1),
    ("the stride is ignored; the result should be divided by the stride",
     lambda n, k, p, s, d: n + 2 * p - d * (k - 1) - 1 + 1),
    ("the kernel term should be dilation * (kernel_size - 1), not dilation * kernel_size",
     lambda n, k, p, s, d: (n + 2 * p - d * k - 1) // s + 1),
]


def explain_conv_size(got: int, n: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> str:
    """Say which term of the output-size formula a wrong answer `got` most likely got wrong."""
    want = conv_output_size_reference(n, kernel_size, padding, stride, dilation)
    setting = (
        f"with padding {padding}, stride {stride} and dilation {dilation}, "
        f"a {kernel_size}x{kernel_size} kernel maps side {n} to {want}, but you predicted {got}"
    )
    for slip, formula in _CONV_SIZE_SLIPS:
        if formula(n, kernel_size, padding, stride, dilation) == got:
            return f"{setting}: {slip}."
    return f"{setting}; compare each term with floor((n + 2p - d(k - 1) - 1) / s) + 1."
