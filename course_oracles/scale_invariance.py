"""References of norm_layers' angular-update exercise and of its equilibrium-angle prediction."""

from __future__ import annotations

import math

import torch


def angle_between(a: torch.Tensor, b: torch.Tensor) -> float:
    """The angle (radians) between two tensors seen as vectors, in float64."""
    a, b = a.detach().reshape(-1).double(), b.detach().reshape(-1).double()
    # atan2 of the sine and cosine parts stays accurate for tiny angles, where acos(cos) loses digits
    cross = torch.linalg.vector_norm(a * b.norm() - b * (a @ b) / b.norm())
    return math.atan2(cross.item(), (a @ b).item())


def equilibrium_angle(lr: float, weight_decay: float) -> float:
    """The angle a scale-invariant weight turns by per SGD step once weight decay balances gradient growth:
    tan(angle) = sqrt(2 lr wd - (lr wd)^2) / (1 - lr wd), about sqrt(2 lr wd)."""
    shrink = lr * weight_decay
    return math.atan2(math.sqrt(2 * shrink - shrink**2), 1 - shrink)
