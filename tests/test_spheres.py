"""The sphere sampler, the concentric-spheres dataset and the nearest-pair distance."""

import math

import pytest
import torch

from course_oracles import spheres as reference
from course_utils import spheres


@pytest.mark.parametrize("d, radius", [(3, 1.0), (30, 1.3)])
def test_sample_sphere_lies_on_the_sphere(d, radius):
    X = reference.sample_sphere(1000, d, radius, seed=1)
    assert X.shape == (1000, d)
    torch.testing.assert_close(X.norm(dim=1), torch.full((1000,), radius))


def test_sample_sphere_moments_match_the_uniform_law():
    # On the unit sphere in d dimensions: E[x_i] = 0, E[x_i^2] = 1/d, E[x_i^4] = 3 / (d (d + 2)).
    d, n = 5, 200_000
    X = reference.sample_sphere(n, d, seed=0).double()
    assert X.mean(dim=0).abs().max() < 5 / math.sqrt(n)
    torch.testing.assert_close((X**2).mean(dim=0), torch.full((d,), 1 / d, dtype=torch.float64), atol=3e-3, rtol=0)
    torch.testing.assert_close((X**4).mean(dim=0), torch.full((d,), 3 / (d * (d + 2)), dtype=torch.float64),
                               atol=1.5e-3, rtol=0)


def test_sample_sphere_in_3d_has_uniform_heights():
    # Archimedes: on the unit sphere in 3-D each coordinate is uniform on [-1, 1].
    X = reference.sample_sphere(100_000, 3, seed=2)
    counts = torch.histc(X[:, 0], bins=10, min=-1, max=1)
    assert (counts / 10_000 - 1).abs().max() < 0.05


def test_sample_sphere_is_seeded():
    a, b = reference.sample_sphere(10, 4, seed=3), reference.sample_sphere(10, 4, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, reference.sample_sphere(10, 4, seed=4))


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_does_sample_sphere_compute_in_the_requested_dtype(dtype):
    X = reference.sample_sphere(50, 6, radius=2.0, seed=5, dtype=dtype)
    assert X.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert (X.double().norm(dim=1) - 2.0).abs().max() < 2 * tol


def test_does_sample_sphere_leave_the_global_generator_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    reference.sample_sphere(10, 3, seed=1)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("d", [2, 3, 5, 30])
@pytest.mark.parametrize("h", [0.05, 0.2, 0.7])
def test_does_band_share_match_sampled_points(d, h):
    X = reference.sample_sphere(200_000, d, seed=d).double()
    measured = (X[:, 0].abs() <= h).double().mean().item()
    exact = reference.band_share(d, h)
    assert abs(measured - exact) < 5 * math.sqrt(exact * (1 - exact) / 200_000) + 1e-9


def test_does_band_share_agree_with_closed_forms():
    # Archimedes in 3-D: heights are uniform; on the circle x1 = sin(a) with a uniform: 2 asin(h) / pi.
    for h in (0.1, 0.5, 0.9):
        assert reference.band_share(3, h) == pytest.approx(h, abs=1e-8)
        assert reference.band_share(2, h) == pytest.approx(2 * math.asin(h) / math.pi, abs=1e-6)
    # High dimension: x1 sqrt(d) is close to a standard Gaussian.
    assert reference.band_share(2000, 0.03) == pytest.approx(math.erf(0.03 * math.sqrt(1000)), abs=2e-3)
    assert reference.band_share(30, 1.0) == pytest.approx(1.0) and reference.band_share(30, 0.0) == pytest.approx(0.0)


def test_does_cap_height_invert_the_share_of_a_cap():
    for d, share in ((3, 0.25), (30, 0.01), (100, 0.3)):
        t = spheres.cap_height(d, share)
        assert reference.height_share(d, t, 1.0) == pytest.approx(share, abs=1e-7)
    assert spheres.cap_height(3, 0.25) == pytest.approx(0.5, abs=1e-6)  # uniform heights in 3-D
    with pytest.raises(ValueError):
        spheres.cap_height(3, 0.0)


def test_is_the_robust_accuracy_bound_a_caps_neighbourhood():
    d, mu = 10, 0.05
    assert spheres.robust_accuracy_bound(d, mu, 0.0) == pytest.approx(1 - mu, abs=1e-6)
    values = [spheres.robust_accuracy_bound(d, mu, e) for e in (0.0, 0.1, 0.3, 0.6)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert spheres.robust_accuracy_bound(d, 0.0, 0.3) == 1.0
    # Monte Carlo: points farther than eps (chord) from the cap {x1 >= t} are those below the height of the
    # cap's boundary rotated by the angle 2 asin(eps / 2).
    t, eps = spheres.cap_height(d, mu), 0.3
    X = reference.sample_sphere(100_000, d, seed=3).double()
    cap_point = lambda x: torch.cat([torch.full((len(x), 1), t, dtype=x.dtype),
                                     math.sqrt(1 - t * t) * x[:, 1:] / x[:, 1:].norm(dim=1, keepdim=True)], dim=1)
    inside = X[:, 0] >= t
    distance = torch.where(inside, torch.zeros(len(X), dtype=X.dtype), (X - cap_point(X)).norm(dim=1))
    measured = (distance > eps).double().mean().item()
    assert spheres.robust_accuracy_bound(d, mu, eps) == pytest.approx(measured, abs=5e-3)


def test_do_meridian_coordinates_keep_every_norm():
    X = torch.randn(100, 7, dtype=torch.float64)
    u = torch.randn(7, dtype=torch.float64)
    xy = spheres.meridian_coordinates(X, u)
    torch.testing.assert_close(xy.norm(dim=1), X.norm(dim=1))
    assert (xy[:, 1] >= 0).all()
    torch.testing.assert_close(xy[:, 0], X @ (u / u.norm()))

