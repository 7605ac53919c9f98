"""Reference of the per-layer weight-gradient norms that bn_chaos' exercise measures (cross-entropy version)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def weight_grad_sq_norms(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norm of the gradient of the mean cross-entropy on (X, y) with respect to the weight of
    every `nn.Linear` in `model`, input layer first and head last, in the model's current mode. Gradients
    already stored in `.grad` are neither used nor changed."""
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(F.cross_entropy(model(X), y), weights)
    return torch.stack([g.double().pow(2).sum() for g in grads])
