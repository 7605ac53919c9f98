"""Model builders shared by the labs: plain and batch-normalized ReLU MLPs."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

NormPosition = Literal["after_relu", "before_relu"]


def mlp(
    in_features: int,
    width: int,
    depth: int,
    out_features: int,
    batchnorm: bool = False,
    norm_position: NormPosition = "after_relu",
) -> nn.Sequential:
    """A ReLU MLP with `depth` hidden layers of `width` units, He-initialized with zero biases.

    Hidden layers are Linear -> ReLU -> BatchNorm1d (`after_relu`) or Linear -> BatchNorm1d -> ReLU
    (`before_relu`) when `batchnorm` is set. Used by mlp_depth_sweep, bn_chaos, adversarial_spheres.
    """
    layers: list[nn.Module] = []
    fan_in = in_features
    for _ in range(depth):
        block: list[nn.Module] = [nn.Linear(fan_in, width), nn.ReLU()]
        if batchnorm:
            block.insert(1 if norm_position == "before_relu" else 2, nn.BatchNorm1d(width))
        layers += block
        fan_in = width
    layers.append(nn.Linear(fan_in, out_features))
    model = nn.Sequential(*layers)
    he_init(model)
    return model


def he_init(model: nn.Module) -> None:
    """He (Kaiming) normal weights for every Linear layer, zero biases: keeps ReLU activations O(1)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
