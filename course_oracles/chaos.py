"""The mean-field theory behind bn_chaos' and mlp_depth_sweep's gradient-growth predictions."""

from __future__ import annotations

import math


def bn_gradient_growth(batch_size: int) -> float:
    """Yang et al.'s lambda(B): the factor by which the squared weight-gradient norm grows per layer, going
    backwards, in an infinitely wide Linear -> BatchNorm -> ReLU network at initialization (batch size B > 3).

    lambda(B) = [(B - 1 + J1'(c)) / (1 - J1(c)) - 1] / (B - 3) with c = -1 / (B - 1), where
    J1(c) = (sqrt(1 - c^2) + (pi - arccos c) c) / pi and J1'(c) = (pi - arccos c) / pi.
    """
    if batch_size <= 3:
        raise ValueError(f"the formula needs a batch size above 3, got {batch_size}")
    c = -1 / (batch_size - 1)
    J1 = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
    J1_prime = (math.pi - math.acos(c)) / math.pi
    return ((batch_size - 1 + J1_prime) / (1 - J1) - 1) / (batch_size - 3)
