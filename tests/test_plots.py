"""Plot helpers return a figure and axes holding the data they were given."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch

from course_utils import plots


def test_plot_sphere_slice_draws_the_circle_of_the_slice():
    X = torch.nn.functional.normalize(torch.randn(500, 3), dim=1)
    fig, ax = plots.plot_sphere_slice(X, level=0.6, width=0.05)
    circle = ax.lines[0].get_xydata()
    np.testing.assert_allclose(np.linalg.norm(circle, axis=1), 0.8, rtol=1e-3)
    n_slice = int((abs(X[:, 2] - 0.6) < 0.05).sum())
    assert len(ax.collections[1].get_offsets()) == n_slice


def test_plot_concentration_plots_the_values():
    fig, ax = plots.plot_concentration([2, 10, 100], [0.01, 0.6, 1.2])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.01, 0.6, 1.2])


def test_plot_accuracy_under_attack_plots_the_seed_mean():
    eps = np.linspace(0, 1, 5)
    acc = np.array([[1, 0.8, 0.5, 0.2, 0.0], [1, 0.6, 0.3, 0.2, 0.0]])
    fig, ax = plots.plot_accuracy_under_attack(eps, {"a": acc})
    np.testing.assert_allclose(ax.lines[0].get_ydata(), acc.mean(axis=0))
