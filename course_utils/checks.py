"""Checks that students and autograder tests call: each failure says in words what is wrong.

Every check raises `AssertionError` with a message written for a student and returns nothing
when the answer is right, so a test cell reads as a list of checks.
"""

from __future__ import annotations

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


def check_int_tuple(value: Any, length: int | None, name: str) -> None:
    """Fail unless `value` is a tuple of ints (of `length` entries when given), as a docstring's "tuple of ints" asks.

    A list, a tensor or NumPy integers are refused with what they are. Used by conv_shapes.
    """
    if not isinstance(value, tuple):
        raise AssertionError(f"{name} should be a tuple of ints, but it is a {type(value).__name__}: {value!r}.")
    wrong = [f"entry {i} is a {type(v).__name__}" for i, v in enumerate(value)
             if not isinstance(v, int) or isinstance(v, bool)]
    if wrong:
        raise AssertionError(f"{name} should be a tuple of ints, but in {value!r} " + "; ".join(wrong) + ".")
    if length is not None and len(value) != length:
        raise AssertionError(f"{name} should have {length} entries, but {value!r} has {len(value)}.")


class SideTable:
    """An output-size rule given as a table of the sides some layers produce: (n, kernel_size, padding, stride,
    dilation) -> side. Tests pass it to a student's shape tracer in place of their output-size formula, so that a
    slip in the formula costs only the formula's test. Used by conv_shapes."""

    def __init__(self, sides: dict[tuple[int, int, int, int, int], int]):
        self.sides = dict(sides)

    @classmethod
    def measure(cls, layers: Sequence[torch.nn.Module], input_shape: Sequence[int]) -> "SideTable":
        """The sides every Conv2d and MaxPool2d of `layers` produces, per axis, when a zero batch of `input_shape`
        runs through them in order."""
        sides = {}
        X = torch.zeros(*input_shape)
        with torch.no_grad():
            for layer in layers:
                before = X.shape[-2:]
                X = layer(X)
                if isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
                    settings = [v if isinstance(v, tuple) else (v, v)
                                for v in (layer.kernel_size, layer.padding, layer.stride, layer.dilation)]
                    for axis in (0, 1):
                        sides[(int(before[axis]), *(int(v[axis]) for v in settings))] = int(X.shape[-2 + axis])
        return cls(sides)

    def __call__(self, n: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
        key = (n, kernel_size, padding, stride, dilation)
        if key not in self.sides:
            raise KeyError(f"the output size was asked for n={n}, kernel_size={kernel_size}, padding={padding}, "
                           f"stride={stride}, dilation={dilation}, which no layer of the stack has on that axis")
        return self.sides[key]


# Wrong versions of the conv output-size formula, each paired with the term a student got wrong. With
# L = n + 2p the padded side and span = d(k - 1) + 1 the pixels a dilated kernel covers, the truth is
# (L - span) // s + 1.
_CONV_SIZE_SLIPS: list[tuple[str, Callable[[int, int, int, int, int], int]]] = [
    ("the final + 1 is missing", lambda n, k, p, s, d: (n + 2 * p - d * (k - 1) - 1) // s),
    ("the + 1 is inside the division; it belongs after the floor",
     lambda n, k, p, s, d: (n + 2 * p - d * (k - 1) - 1 + 1) // s),
    ("the padding is added on one side only; it should be 2 * padding",
     lambda n, k, p, s, d: (n + p - d * (k - 1) - 1) // s + 1),
    ("the padding is ignored; it adds 2 * padding to the side",
     lambda n, k, p, s, d: (n - d * (k - 1) - 1) // s + 1),
    ("the dilation is ignored; the kernel spans dilation * (kernel_size - 1) + 1 pixels",
     lambda n, k, p, s, d: (n + 2 * p - (k - 1) - 1) // s + 1),
    ("the - 1 inside the floor is missing", lambda n, k, p, s, d: (n + 2 * p - d * (k - 1)) // s + 1),
    ("the division rounds up; it should round down (floor)",
     lambda n, k, p, s, d: -(-(n + 2 * p - d * (k - 1) - 1) // s) + 1),
    ("the stride is ignored; the result should be divided by the stride",
     lambda n, k, p, s, d: n + 2 * p - d * (k - 1) - 1 + 1),
    ("the kernel term should be dilation * (kernel_size - 1), not dilation * kernel_size",
     lambda n, k, p, s, d: (n + 2 * p - d * k - 1) // s + 1),
]

ConvSizeAnswer = tuple[tuple[int, int, int, int, int], Any, int]


def _slip_fit(formula: Callable[..., int], answers: Sequence[ConvSizeAnswer]) -> int | None:
    """How many inputs a slip's formula tells apart from the truth, if it reproduces every answer; else None."""
    predicted = [formula(*case) for case, _, _ in answers]
    if not all(type(got) is int and got == guess for (_, got, _), guess in zip(answers, predicted)):
        return None
    return sum(guess != want for (_, _, want), guess in zip(answers, predicted))


def conv_size_slip(answers: Sequence[ConvSizeAnswer], min_witnesses: int = 3) -> tuple[str, int] | None:
    """The one slip of the output-size formula that explains a student's answers, with its number of witnesses.

    `answers` holds `((n, kernel_size, padding, stride, dilation), got, want)` triples. A slip is named only
    when recomputing with it gives the student's `got` on every input, and it differs from the truth `want`
    on at least `min_witnesses` of them (its witnesses); when no slip, or more than one, fits, the result is
    None.
    """
    fitting = [(slip, fit) for slip, formula in _CONV_SIZE_SLIPS
               if (fit := _slip_fit(formula, answers)) is not None and fit >= min_witnesses]
    return fitting[0] if len(fitting) == 1 else None


def explain_conv_size(answers: Sequence[ConvSizeAnswer], min_witnesses: int = 3) -> str:
    """What is wrong in a student's output sizes, or "" when every answer is right.

    `answers` holds `((n, kernel_size, padding, stride, dilation), got, want)` triples, `want` being what the
    layer gives. The message names the first wrong answer and how many are wrong, and a likely slip in the
    formula only when `conv_size_slip` confirms it on at least `min_witnesses` inputs. Used by conv_shapes.
    """
    wrong = [(case, got, want) for case, got, want in answers if type(got) is not int or got != want]
    if not wrong:
        return ""
    (n, k, p, s, d), got, want = wrong[0]
    message = (f"for n={n}, kernel_size={k}, padding={p}, stride={s}, dilation={d} you computed {got!r}, "
               f"the layer gives {want} ({len(wrong)} of your {len(answers)} answers are wrong)")
    found = conv_size_slip(answers, min_witnesses)
    if found is not None:
        slip, witnesses = found
        return (f"{message}. Likely cause, confirmed on all {len(answers)} inputs (on {witnesses} of them it "
                f"changes the result): {slip}.")
    return f"{message}. Check each term of your rule against the measured tables."
