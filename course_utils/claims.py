"""Instructor-only checks that a lab's narrative says what its own run shows.

A lab states results in its source notebook (the instructor's version). Each number it quotes is checked
against the run that produced it by a cell tagged `instructor` (never released): `cu.claims.check(...)`.
The checks apply to full runs (`course validate --full`); a quick run shrinks every experiment, so
there they only record nothing.
"""

from __future__ import annotations

from .runtime import is_quick


class ClaimError(AssertionError):
    """The run no longer shows what the lab's text says."""


def check(what: str, value: float, low: float | None = None, high: float | None = None) -> None:
    """Fail in a full run unless `low <= value <= high` (either bound may be None); `what` names the claim."""
    if is_quick():
        return
    value = float(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        raise ClaimError(f"the text says {what} lies in {bounds}, but this run gives {value:.6g}")
