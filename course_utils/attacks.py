"""What adversarial_spheres' attack builds on and its tests pass in: the losses an attack ascends, and models and
steps that let a test vary the attack's arguments. The attack itself is the students' to write.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example best wrong logit minus the true logit: positive exactly when the example is misclassified."""
    true = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, y.unsqueeze(1), float("-inf"))
    return others.max(dim=1).values - true


def cross_entropy_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy, shape (n,): the loss the attack ascends by default."""
    return F.cross_entropy(logits, y, reduction="none")


def gradient_step(X: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
    """Move `X` by `step_size` times its raw gradient (plain gradient ascent, no normalization).

    A step other than the lab's L2 one: tests pass it to an attack to check that it takes its steps from `step_fn`.
    """
    return X + step_size * grad


def clamp_to_box(X: torch.Tensor, y: torch.Tensor, radii: Sequence[float]) -> torch.Tensor:
    """Clip each row of `X` to the box [-radii[y], radii[y]] of its class in every coordinate.

    A projection other than the lab's onto spheres: tests pass it to an attack to check that it projects with
    `project_fn`.
    """
    bound = torch.as_tensor(radii, dtype=X.dtype, device=X.device)[y].unsqueeze(1)
    return torch.minimum(torch.maximum(X, -bound), bound)


class RaisingModel(nn.Module):
    """A model whose forward pass always raises: tests use it to check that an attack restores the mode anyway."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this model's forward pass always raises")
