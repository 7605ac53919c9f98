"""Instructor-only checks that a lab's narrative says what its own run shows.

A lab states results in its source notebook (the instructor's version). Each number it quotes is checked
against the run that produced it by a cell tagged `instructor` (never released), given the number exactly as
the text writes it: `cu.claims.check("the mean of q_1", q1.mean(), "1.903")`. The band is derived from the
quote (its rounding, plus the spread it states), so a check is as precise as its sentence. The checks apply
to full runs (`course validate --full`); a quick run shrinks every experiment, so there they check nothing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .runtime import is_quick


class ClaimError(AssertionError):
    """The run no longer shows what the lab's text says."""


class QuoteError(ValueError):
    """A claim's quoted number is not in a form `band` reads."""


# One number as a text writes it: a sign, digits with optional thousands commas, decimals, and an optional
# power of ten written "e4" or "× 10^4".
NUMBER = r"[+\-−]?(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[+\-−]?\d+|\s*[×x]\s*10\^[+\-−]?\d+)?"
_FORMS = {
    "point": re.compile(rf"(?P<about>about\s+)?(?P<a>{NUMBER})"),
    "spread": re.compile(rf"(?P<a>{NUMBER})\s*±\s*(?P<b>{NUMBER})"),
    "range": re.compile(rf"(?P<a>{NUMBER})\s+to\s+(?P<b>{NUMBER})"),
    "bound": re.compile(rf"(?P<op>[<>])\s*(?P<a>{NUMBER})"),
}


@dataclass(frozen=True)
class Number:
    """A number as quoted: its value and half a unit of its last significant digit."""

    value: float
    half_unit: float


@dataclass(frozen=True)
class Band:
    """The values a quote allows, `low <= value <= high` (either end may be infinite)."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        slack = 1e-9 * max(abs(self.low) if math.isfinite(self.low) else 0.0,
                           abs(self.high) if math.isfinite(self.high) else 0.0)
        return self.low - slack <= value <= self.high + slack

    def __str__(self) -> str:
        return f"[{self.low:.6g}, {self.high:.6g}]"


_PARTS = re.compile(r"(?P<mantissa>[+\-]?[\d.]+)(?:e(?P<e>[+\-]?\d+)|\s*[×x]\s*10\^(?P<p>[+\-]?\d+))?")


def number(text: str, about: bool = False) -> Number:
    """Read one quoted number ("0.539", "1,628", "2.6e8", "2.6 × 10^8"); with `about`, trailing zeros of its
    digits are not significant ("about 3,400" is 3,400 to the nearest hundred)."""
    parts = _PARTS.fullmatch(text.replace("−", "-").replace(",", ""))
    if parts is None:
        raise QuoteError(f"cannot read the number {text!r}")
    exponent = int(parts["e"] or parts["p"] or 0)
    digits = parts["mantissa"].lstrip("+-")
    decimals = len(digits.partition(".")[2])
    if about:
        written = digits.replace(".", "")
        decimals -= len(written) - max(len(written.rstrip("0")), 1)
    return Number(float(parts["mantissa"]) * 10.0 ** exponent, 0.5 * 10.0 ** (exponent - decimals))


def band(quoted: str) -> Band:
    """The band a quote allows: "0.539" (its rounding), "about 3,400" (trailing zeros not significant),
    "0.539 ± 0.018" (the spread plus the rounding), "0.29 to 0.44" (both ends' rounding), "< 2" or "> 1e6"
    (at most, at least: the bound as written)."""
    text = " ".join(quoted.split())
    for form, pattern in _FORMS.items():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        if form == "point":
            a = number(match["a"], about=bool(match["about"]))
            return Band(a.value - a.half_unit, a.value + a.half_unit)
        if form == "spread":
            a, b = number(match["a"]), number(match["b"])
            if b.value < 0:
                raise QuoteError(f"the spread of {quoted!r} is negative")
            half = min(a.half_unit, b.half_unit)  # "0 ± 0.05": the centre is quoted to the spread's digits
            return Band(a.value - b.value - half, a.value + b.value + half)
        if form == "range":
            a, b = number(match["a"]), number(match["b"])
            if a.value > b.value:
                raise QuoteError(f"the range {quoted!r} runs backwards: write the smaller number first")
            return Band(a.value - a.half_unit, b.value + b.half_unit)
        bound = number(match["a"]).value
        return Band(-math.inf, bound) if match["op"] == "<" else Band(bound, math.inf)
    raise QuoteError(f"cannot read the quote {quoted!r}: write a number as the text states it, e.g. '0.539', "
                     "'about 1', '0.539 ± 0.018', '0.29 to 0.44', '2.6e8', '< 2'")


def check(what: str, value: float, quoted: str) -> None:
    """Fail in a full run unless `value` lies in the band the quoted number allows; `what` names the claim.

    `quoted` is the number as the text states it (see `band`): "1.903", "about 15", "+0.010 ± 0.008",
    "0.45 to 0.49", "> 1e6". A malformed quote fails in quick runs too.
    """
    if not isinstance(quoted, str):
        raise TypeError(f"check({what!r}, value, quoted): give the number as the text states it, as a string")
    allowed = band(quoted)
    if is_quick():
        return
    value = float(value)
    if value not in allowed:
        raise ClaimError(f"the text says {what} is {quoted} (allowing {allowed}), but this run gives {value:.6g}")
