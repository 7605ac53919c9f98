"""Reproducibility, device choice and the quick-run flag shared by every lab."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch

QUICK_ENV = "COURSE_QUICK"
T = TypeVar("T")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a lab's numbers repeat run to run."""
    import numpy as np  # imported here, so that `course --help` and the quick-run flag never load torch
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_device() -> torch.device:
    """The GPU when PyTorch sees one, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def is_quick() -> bool:
    """True when `COURSE_QUICK` is set to a true value (CI and autograding shrink experiments)."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def pick(full: T, quick: T) -> T:
    """Return `quick` under the quick-run flag and `full` otherwise, e.g. `cu.pick(full=20, quick=2)`."""
    return quick if is_quick() else full
