"""BatchNorm chaos at initialization (Yang et al., ICLR 2019): the inputs and measurements
that the bn_chaos lab builds on, so that its notebook holds only what it teaches.

- `circle_batches`: two minibatches on a circle that differ in one point;
- `layer_outputs`: the activations after every BatchNorm layer of a plain `nn.Sequential`;
- `shared_correlation`: how alike two batches' activations of their shared points are;
- `affine_fit_residual`: how far a set of activations is from an affine image of the inputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def circle_batches(width: int, batch_size: int = 64, perturbation: float = 0.1,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two float64 batches of `batch_size` points on the unit circle in a random plane of R^width.

    The points sit at equal angles; the batches are identical except point 0, which each batch moves by
    `perturbation` in its own random direction. Build in float64 and cast with `.float()` where float32 is
    wanted, so that both precisions start from the same numbers. Used by bn_chaos.
    """
    plane = torch.linalg.qr(torch.randn(width, 2, dtype=torch.float64, generator=generator)).Q  # (width, 2)
    theta = torch.arange(batch_size, dtype=torch.float64) * (2 * math.pi / batch_size)
    X = torch.stack([theta.cos(), theta.sin()], dim=1) @ plane.T  # (batch_size, width)
    batches = []
    for _ in range(2):
        direction = torch.randn(width, dtype=torch.float64, generator=generator)
        Xb = X.clone()
        Xb[0] += perturbation * direction / direction.norm()
        batches.append(Xb)
    return batches[0], batches[1]


@torch.no_grad()
def layer_outputs(model: nn.Sequential, X: torch.Tensor) -> list[torch.Tensor]:
    """The input followed by the output of every BatchNorm layer of `model`, run in the mode the model is in.

    Used by bn_chaos.
    """
    outs, h = [X], X
    for module in model:
        h = module(h)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            outs.append(h)
    return outs


def shared_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation (in float64) between two batches' activations of the points they share (all but point 0).

    Used by bn_chaos.
    """
    pair = torch.stack([a[1:].flatten(), b[1:].flatten()]).to(torch.float64)
    return float(torch.corrcoef(pair)[0, 1])


def affine_fit_residual(H: torch.Tensor, X: torch.Tensor, rtol: float = 1e-9) -> float:
    """How far the rows of H are from an affine function of the rows of X: ||H - fit|| / ||H - mean(H)||.

    The fit is the least-squares affine map from X's rows to H's rows, computed in float64 on the directions
    X actually spans (singular values above `rtol` times the largest), so X may be low-rank, such as points
    on a circle in a high-dimensional space. 0 means every row of H is exactly A x + b for one A and b; a
    value of order 1 means H has nothing affine left in it. Used by bn_chaos.
    """
    H, X = H.detach().to("cpu", torch.float64), X.detach().to("cpu", torch.float64)
    Xc = X - X.mean(dim=0)
    _, S, Vh = torch.linalg.svd(Xc, full_matrices=False)
    coords = Xc @ Vh[S > rtol * S[0]].T  # (n, rank): X's coordinates in its own span
    A = torch.cat([torch.ones(len(X), 1, dtype=torch.float64), coords], dim=1)
    Hc = H - H.mean(dim=0)
    fit = A @ torch.linalg.lstsq(A, Hc).solution
    return float((Hc - fit).norm() / Hc.norm())
