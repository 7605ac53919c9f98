"""Helpers shared by the Batch Norm Labs notebooks: `import course_utils as cu`.

Submodules load on first use, so `cu.checks.check_close(...)` works without importing
`course_utils.checks` first and the instructor tooling never slows a student's import.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .runtime import get_device, is_quick, pick, seed_everything

__all__ = ["get_device", "is_quick", "pick", "seed_everything"]


def __getattr__(name: str) -> ModuleType:
    """Import `course_utils.<name>` when a notebook first touches `cu.<name>`."""
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"course_utils has no module or helper named {name!r}") from None
