"""Text from a submission made safe for where it is shown: a terminal (no control characters or escape
sequences survive) or a CSV file a spreadsheet opens (no cell is read as a formula)."""

from __future__ import annotations

import unicodedata

MAX_TERMINAL = 300  # characters of one submission-derived text shown on a terminal line
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _visible(ch: str) -> str:
    """A control or formatting character as a printable escape (\\x1b, \\u202e); any other character as itself."""
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return ch


def for_terminal(text: object, limit: int = MAX_TERMINAL) -> str:
    """`text` with every control character, escape sequence introducer and bidirectional override replaced by
    a visible escape, cut to about `limit` characters (an ellipsis says so)."""
    text = str(text)
    cut = len(text) > limit
    shown = "".join(_visible(ch) for ch in text[:limit])
    if len(shown) > limit:
        shown = shown[:limit]
        cut = True
    return shown + "…" if cut else shown


def for_csv(value: object) -> str:
    """`value` as a CSV cell that a spreadsheet shows as text: a leading = + - @ tab or carriage return, which
    would start a formula, gets a ' before it. Numbers pass unchanged (a negative number stays a number)."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.12g}" if isinstance(value, float) else str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
