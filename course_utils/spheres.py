"""The concentric-spheres dataset of Gilmer et al. (2018): uniform points on spheres in d dimensions."""

from __future__ import annotations

import torch

RADII = (1.0, 1.3)  # class 0 lies on the inner sphere, class 1 on the outer one


def sample_sphere(n: int, d: int, radius: float = 1.0, seed: int = 0) -> torch.Tensor:
    """`n` points drawn uniformly on the sphere of `radius` in `d` dimensions, shape (n, d).

    A standard Gaussian vector has a rotation-invariant law, so dividing it by its length gives a
    uniform direction. Used by adversarial_spheres.
    """
    gen = torch.Generator().manual_seed(seed)
    Z = torch.randn(n, d, generator=gen)
    return radius * Z / Z.norm(dim=1, keepdim=True)


def concentric_spheres(n: int, d: int, seed: int = 0, radii: tuple[float, float] = RADII) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` shuffled points, half on each sphere of `radii`, with label 0 (inner) or 1 (outer).

    Returns (X, y) with X of shape (n, d) and integer labels y. Used by adversarial_spheres.
    """
    gen = torch.Generator().manual_seed(seed)
    y = torch.randperm(n, generator=gen) % 2
    X = sample_sphere(n, d, 1.0, seed=seed + 1)
    return X * torch.tensor(radii)[y].unsqueeze(1), y


def nearest_pair_distance(X: torch.Tensor, chunk: int = 2048) -> float:
    """The smallest distance between two distinct rows of `X`, computed chunk by chunk to bound memory.

    Used by adversarial_spheres to show that random points on a high-dimensional sphere are all far apart.
    """
    X = X.double()  # float32 loses the small distances of low dimensions to cancellation
    sq = (X * X).sum(dim=1)
    best = float("inf")
    for start in range(0, len(X), chunk):
        block = X[start:start + chunk]
        d2 = sq[start:start + chunk, None] + sq[None, :] - 2 * block @ X.T
        rows = torch.arange(len(block))
        d2[rows, rows + start] = float("inf")  # a point is not its own neighbour
        best = min(best, d2.min().item())
    return max(best, 0.0) ** 0.5
