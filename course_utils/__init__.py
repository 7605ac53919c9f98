"""Helpers shared by the Batch Norm Labs notebooks: `import course_utils as cu`.

Submodules load on first use, so `cu.checks.check_close(...)` works without importing
`course_utils.checks` first and the instructor tooling never slows a student's import.
"""

from __future__ import annotations

from .lazy import submodule_loader
from .runtime import get_device, is_quick, pick, seed_everything

__all__ = ["get_device", "is_quick", "pick", "seed_everything"]

__getattr__ = submodule_loader(__name__)
