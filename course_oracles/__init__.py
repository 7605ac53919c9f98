"""Instructor-only reference implementations and oracles of the labs' graded exercises and predictions.

Hidden tests import them inside their hidden part (`import course_oracles as co`, then `co.attacks.l2_step`);
they run in the referee, in the instructor's process, never in a student's kernel or in what students receive
(`course bundle`), so no answer ships with the course. Modules mirror the `course_utils` modules whose labs they
grade, and load on first use.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def __getattr__(name: str) -> ModuleType:
    """Import `course_oracles.<name>` when a test first touches `co.<name>`."""
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"course_oracles has no module named {name!r}") from None
