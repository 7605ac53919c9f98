"""References of adversarial_spheres' sampling exercise and of its band-share prediction."""

from __future__ import annotations

import torch

from course_utils.spheres import _share_below


def sample_sphere(n: int, d: int, radius: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`n` points drawn uniformly on the sphere of `radius` in `d` dimensions, shape (n, d), of `dtype`.

    A standard Gaussian vector has a rotation-invariant law, so dividing it by its length gives a uniform
    direction. Draws from a private generator seeded with `seed`.
    """
    gen = torch.Generator().manual_seed(seed)
    Z = torch.randn(n, d, generator=gen, dtype=dtype)
    return radius * Z / Z.norm(dim=1, keepdim=True)


def height_share(d: int, low: float, high: float) -> float:
    """The share of the unit sphere in `d` >= 2 dimensions whose first coordinate lies in [low, high].

    On the sphere, x1 = sin(a) where the latitude a has density proportional to cos(a)^(d - 2): in 3-D this is
    Archimedes' uniform x1, in high dimension x1 * sqrt(d) is close to a standard Gaussian.
    """
    if d < 2:
        raise ValueError("height_share needs d >= 2")
    return max(0.0, _share_below(d, high) - _share_below(d, low))


def band_share(d: int, h: float) -> float:
    """The share of the unit sphere in `d` dimensions within height `h` of an equator: |x1| <= h."""
    return height_share(d, -h, h)
