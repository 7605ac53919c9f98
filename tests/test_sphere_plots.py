"""The adversarial_spheres plots: each returns its figure and axes and draws what it is given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils import sphere_plots, spheres


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _on_sphere(n: int, d: int, seed: int, radius: float = 1.0) -> torch.Tensor:
    Z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return radius * Z / Z.norm(dim=1, keepdim=True)


def test_does_plot_band_share_draw_the_measured_points_and_no_exact_curve():
    fig, ax = sphere_plots.plot_band_share([3, 30], [0.2, 0.72], 0.2)
    lines = ax.get_lines()
    assert len(lines) == 1 and list(lines[0].get_xdata()) == [3, 30] and list(lines[0].get_ydata()) == [0.2, 0.72]


def test_does_norm_histograms_lay_out_one_row_per_network_and_one_column_per_layer():
    norms = {"a": torch.rand(5, 40) + 0.1, "b": torch.rand(5, 40) + 1.0}
    y = torch.arange(40) % 2
    fig, axes = sphere_plots.norm_histograms(norms, y, layers=[1, 3, 5])
    assert axes.shape == (2, 3)
    assert axes[0, 2].get_title() == "a: layer 5"
    counts = sum(patch.get_height() for patch in axes[1, 0].patches)
    assert counts == 40  # every example of layer 1 of network b, both classes


def test_does_plot_robust_accuracy_draw_a_line_and_a_dashed_bound_per_model():
    eps = np.linspace(0, 0.3, 7)
    curves = {"m": np.vstack([np.linspace(1, 0.5, 7), np.linspace(0.9, 0.4, 7)])}
    bounds = {"m": np.vstack([np.linspace(1, 0.6, 7)] * 2)}
    fig, ax = sphere_plots.plot_robust_accuracy(eps, curves, bounds)
    solid = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    np.testing.assert_allclose(solid[0].get_ydata(), curves["m"].mean(axis=0))
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--" and len(line.get_xdata())]
    np.testing.assert_allclose(dashed[0].get_ydata(), bounds["m"].mean(axis=0))


def test_do_pair_planes_put_each_pair_at_its_angle():
    gen = torch.Generator().manual_seed(0)
    X = _on_sphere(20, 9, 1).double()
    X_adv = _on_sphere(20, 9, 2).double()
    X_adv[3] = X[3]  # an attacked point that was already an error
    others = torch.randn(20, 9, generator=gen, dtype=torch.float64)
    xy, projected = sphere_plots.pair_planes(X, X_adv, others)
    cos = (X * X_adv).sum(dim=1)
    torch.testing.assert_close(xy[:, 0], cos)
    torch.testing.assert_close(xy.norm(dim=1), torch.ones(20, dtype=torch.float64))
    assert xy[3, 1] == 0 and (xy[:, 1] >= 0).all()
    assert (projected.norm(dim=1) <= others.norm(dim=1) + 1e-12).all()  # a projection never lengthens


def test_does_plot_attack_planes_draw_one_panel_per_configuration():
    X = _on_sphere(30, 6, 0)
    X_adv = _on_sphere(30, 6, 1)
    data = {"inner": _on_sphere(30, 6, 2), "outer": _on_sphere(30, 6, 3, radius=1.3)}
    fig, axes = sphere_plots.plot_attack_planes([("a", X, X_adv, data), ("b", X, X_adv, data)], eps=0.1)
    assert [ax.get_title() for ax in axes.flat[:2]] == ["a", "b"]
    errors = [c for c in axes[0, 0].collections if c.get_label() == "nearest error found"][0].get_offsets()
    np.testing.assert_allclose(np.hypot(errors[:, 0], errors[:, 1]), 1.0, rtol=1e-5)


def test_does_the_data_figure_separate_the_spheres_only_in_the_meridian_chart():
    X, y = spheres.concentric_spheres(200, 10, seed=0)
    fig, axes = sphere_plots.plot_linear_and_meridian(X, y, torch.randn(10), torch.randn(10))
    assert len(axes) == 2
    outer = axes[1].collections[0].get_offsets()
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.3, rtol=1e-5)
