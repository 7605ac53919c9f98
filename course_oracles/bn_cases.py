"""Writes the stored cases of bn_from_scratch's visible checks (`course_utils/bn_cases_data.py`) from the oracles.

Run `python -m course_oracles.bn_cases` after changing a case generator or a slip: tests/test_norm_checks.py
fails while the stored data differs from what the oracles compute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from course_utils import bn_cases

from . import bn_softmax, norm_checks

TARGET = Path(bn_cases.__file__).with_name("bn_cases_data.py")
WIDTH = 100  # characters of base64 per line of the generated module


def visible_cases() -> dict[str, list[dict[str, Any]]]:
    """Every visible check's cases, by check, as the oracles compute them now."""
    return {**norm_checks.visible_cases(), **bn_softmax.visible_cases()}


def module_text(encoded: str) -> str:
    """The source of `bn_cases_data.py` holding `encoded` (`bn_cases.encode`)."""
    lines = "".join(f'    "{encoded[i:i + WIDTH]}"\n' for i in range(0, len(encoded), WIDTH))
    return ('"""The stored cases of bn_from_scratch\'s visible checks, read by `bn_cases` (generated from the '
            'instructor\'s oracles; do not edit)."""\n\nDATA = (\n' + lines + ")\n")


def main() -> None:
    TARGET.write_text(module_text(bn_cases.encode(visible_cases())))
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
