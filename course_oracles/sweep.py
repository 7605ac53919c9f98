"""Reference of mlp_depth_sweep's definition of a diverged run."""

from __future__ import annotations

import math
from typing import Sequence


def has_diverged(losses: Sequence[float]) -> bool:
    """True when a loss curve ever becomes NaN or infinite, or ends above its starting loss."""
    return any(not math.isfinite(loss) for loss in losses) or losses[-1] > losses[0]
