"""The sphere sampler, the concentric-spheres dataset and the nearest-pair distance."""

import math

import pytest
import torch

from course_utils import spheres


@pytest.mark.parametrize("d, radius", [(3, 1.0), (30, 1.3)])
def test_sample_sphere_lies_on_the_sphere(d, radius):
    X = spheres.sample_sphere(1000, d, radius, seed=1)
    assert X.shape == (1000, d)
    torch.testing.assert_close(X.norm(dim=1), torch.full((1000,), radius))


def test_sample_sphere_moments_match_the_uniform_law():
    # On the unit sphere in d dimensions: E[x_i] = 0, E[x_i^2] = 1/d, E[x_i^4] = 3 / (d (d + 2)).
    d, n = 5, 200_000
    X = spheres.sample_sphere(n, d, seed=0).double()
    assert X.mean(dim=0).abs().max() < 5 / math.sqrt(n)
    torch.testing.assert_close((X**2).mean(dim=0), torch.full((d,), 1 / d, dtype=torch.float64), atol=3e-3, rtol=0)
    torch.testing.assert_close((X**4).mean(dim=0), torch.full((d,), 3 / (d * (d + 2)), dtype=torch.float64),
                               atol=1.5e-3, rtol=0)


def test_sample_sphere_in_3d_has_uniform_heights():
    # Archimedes: on the unit sphere in 3-D each coordinate is uniform on [-1, 1].
    X = spheres.sample_sphere(100_000, 3, seed=2)
    counts = torch.histc(X[:, 0], bins=10, min=-1, max=1)
    assert (counts / 10_000 - 1).abs().max() < 0.05


def test_sample_sphere_is_seeded():
    a, b = spheres.sample_sphere(10, 4, seed=3), spheres.sample_sphere(10, 4, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, spheres.sample_sphere(10, 4, seed=4))


def test_concentric_spheres_labels_and_radii():
    X, y = spheres.concentric_spheres(1000, 7, seed=0)
    assert X.shape == (1000, 7) and y.dtype == torch.int64
    assert int(y.sum()) == 500
    torch.testing.assert_close(X.norm(dim=1), torch.tensor(spheres.RADII)[y])


def test_nearest_pair_distance_matches_cdist():
    X = torch.randn(300, 6)
    full = torch.cdist(X.double(), X.double()) + torch.diag(torch.full((300,), float("inf"), dtype=torch.float64))
    assert spheres.nearest_pair_distance(X, chunk=64) == pytest.approx(full.min().item(), rel=1e-9)


def test_nearest_pair_distance_finds_a_duplicate():
    X = torch.randn(50, 3)
    X[40] = X[7]
    assert spheres.nearest_pair_distance(X, chunk=16) == pytest.approx(0.0, abs=1e-6)
