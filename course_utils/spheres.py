"""The concentric-spheres dataset of Gilmer et al. (2018): uniform points on spheres in d dimensions, and the
geometry of the sphere that the lab compares its runs with (bands, caps and the isoperimetric bound)."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

RADII = (1.0, 1.3)  # class 0 lies on the inner sphere, class 1 on the outer one


def concentric_spheres(n: int, d: int, seed: int = 0, radii: tuple[float, float] = RADII) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` shuffled points, half on each sphere of `radii`, with label 0 (inner) or 1 (outer).

    Returns (X, y) with X of shape (n, d) and integer labels y. Used by adversarial_spheres.
    """
    gen = torch.Generator().manual_seed(seed)
    y = torch.randperm(n, generator=gen) % 2
    Z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed + 1))
    X = Z / Z.norm(dim=1, keepdim=True)  # a Gaussian vector's direction is uniform on the sphere
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


@functools.lru_cache(maxsize=64)
def _height_cdf(d: int, steps: int = 200_001) -> tuple[np.ndarray, np.ndarray]:
    """Heights x1 = sin(a) on a fine grid of latitudes a and the share of the unit sphere below each.

    The latitude a of a uniform point has density proportional to cos(a)^(d - 2); the cumulative integral uses
    the trapezoidal rule on `steps` latitudes.
    """
    latitude = np.linspace(-np.pi / 2, np.pi / 2, steps)
    density = np.clip(np.cos(latitude), 0.0, None) ** (d - 2)
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2)])
    return np.sin(latitude), cdf / cdf[-1]


def _share_below(d: int, t: float) -> float:
    heights, cdf = _height_cdf(d)
    return float(np.interp(t, heights, cdf))


def cap_height(d: int, share: float) -> float:
    """The height t of the cap {x1 >= t} that covers `share` of the unit sphere in `d` dimensions."""
    if not 0.0 < share < 1.0:
        raise ValueError("a cap's share lies strictly between 0 and 1")
    heights, cdf = _height_cdf(d)
    return float(np.interp(1.0 - share, cdf, heights))


def robust_accuracy_bound(d: int, error_rate: float, eps: float) -> float:
    """The largest share of the unit sphere in `d` dimensions farther than `eps` (L2) from a set of measure `error_rate`.

    By the isoperimetric inequality on the sphere (Levy), among all sets of a given measure a cap has the
    smallest eps-neighbourhood, so no classifier that errs on `error_rate` of the sphere keeps more than
    this share of points free of errors within `eps` on the same sphere (Gilmer et al., 2018). A chord of
    length eps spans the angle 2 asin(eps / 2). Used by adversarial_spheres.
    """
    if error_rate <= 0.0:
        return 1.0
    if error_rate >= 1.0:
        return 0.0
    angle = math.asin(cap_height(d, error_rate)) - 2 * math.asin(min(eps, 2.0) / 2)
    return _share_below(d, math.sin(max(angle, -math.pi / 2)))


def meridian_coordinates(X: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Each row of X as (its coordinate along `direction`, its distance from the line of `direction`), shape (n, 2).

    Every point of a sphere centred at 0 lands on the half-circle of its radius, so both spheres and any
    point on them can be drawn exactly in this half-plane. Used by adversarial_spheres.
    """
    u = direction / direction.norm()
    along = X @ u
    across = (X - along.unsqueeze(1) * u).norm(dim=1)
    return torch.stack([along, across], dim=1)

