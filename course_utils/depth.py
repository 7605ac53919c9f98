"""Measurements of deep ReLU MLPs: activation scale and gradient norms per layer, weight norms after training.

The networks are `cu.models.mlp`s (He-initialized, optionally batch-normalized). Used by mlp_depth_sweep.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .models import NormPosition, mlp


@torch.no_grad()
def preactivation_mean_squares(X: torch.Tensor, depth: int, width: int = 64, num_nets: int = 100,
                               seed: int = 0, progress: bool = True) -> torch.Tensor:
    """Mean square of every hidden layer's pre-activations (the Linear outputs) on X, for `num_nets` plain
    He-initialized MLPs of `depth` hidden layers (seeds `seed`, `seed + 1`, ...): a (num_nets, depth) tensor.

    Layer l of a deep network is distributed as the last layer of an l-layer one, so one set of deep networks
    shows every depth. Used by mlp_depth_sweep.
    """
    out = torch.empty(num_nets, depth, dtype=torch.float64)
    for n in tqdm(range(num_nets), desc="networks", disable=not progress, leave=False):
        torch.manual_seed(seed + n)
        model = mlp(X.shape[1], width, depth, 10).to(X)
        h = X
        for layer in range(depth):
            z = model[2 * layer](h)  # (N, width): the layer's Linear output
            out[n, layer] = z.double().pow(2).mean()
            h = model[2 * layer + 1](z)
    return out


def init_grad_sq_norms(X: torch.Tensor, y: torch.Tensor, depth: int, batchnorm: bool = True, width: int = 64,
                       norm_position: NormPosition = "after_relu", batch_size: int = 32, num_nets: int = 5,
                       seed: int = 0) -> torch.Tensor:
    """Squared Frobenius norm of the gradient of the mean cross-entropy with respect to every Linear weight (input
    layer first, head last) at initialization, in training mode, on a random batch of `batch_size` examples, for
    `num_nets` MLPs (seeds `seed`, `seed + 1`, ...): a (num_nets, depth + 1) float64 tensor. Used by mlp_depth_sweep."""
    rows = []
    for n in range(num_nets):
        torch.manual_seed(seed + n)
        model = mlp(X.shape[1], width, depth, 10, batchnorm, norm_position).to(X)
        idx = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed + n))[:batch_size].to(X.device)
        weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
        grads = torch.autograd.grad(F.cross_entropy(model(X[idx]), y[idx]), weights)
        rows.append(torch.stack([g.double().pow(2).sum() for g in grads]))
    return torch.stack(rows)


def weight_norms(model: nn.Module) -> torch.Tensor:
    """Frobenius norm of the weight of every `nn.Linear` in `model`, input layer first. Used by mlp_depth_sweep."""
    return torch.stack([m.weight.detach().double().norm() for m in model.modules() if isinstance(m, nn.Linear)])


def growth_per_layer(sq_norms: torch.Tensor) -> torch.Tensor:
    """The factor by which squared gradient norms grow per layer going backwards, fitted (least squares on their
    logarithms) over the hidden-to-hidden layers of each row of `init_grad_sq_norms` (input layer and head left
    out): a tensor with one factor per network. Used by mlp_depth_sweep."""
    logs = sq_norms[:, 1:-1].double().log()  # (nets, depth - 1): layers 2 .. depth
    layer = torch.arange(logs.shape[1], dtype=torch.float64)
    centred = layer - layer.mean()
    slope = ((logs - logs.mean(1, keepdim=True)) * centred).sum(1) / centred.pow(2).sum()
    return torch.exp(-slope)
