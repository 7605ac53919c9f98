"""Do the plotting helpers draw what they are given and return their figure?"""

from __future__ import annotations

import base64
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_oracles.sweep import has_diverged
from course_utils import plots
from course_utils.sweep import Run


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(40, 2)) * [3.0, 1.0] + [10.0, -2.0]
    return X, (X[:, 0] > 10.0).astype(int) + 2 * (X[:, 1] > -2.0).astype(int)


def quadrant(Z):
    return (Z[:, 0] > 10.0).astype(int) + 2 * (Z[:, 1] > -2.0).astype(int)


def test_decision_grid_evaluates_the_classifier_on_a_grid_around_the_points(points):
    X, _ = points
    xs, ys, labels = plots.decision_grid(quadrant, X, steps=50)
    assert xs.shape == ys.shape == (50,) and labels.shape == (50, 50)
    assert xs[0] < X[:, 0].min() and xs[-1] > X[:, 0].max()
    assert ys[0] < X[:, 1].min() and ys[-1] > X[:, 1].max()
    i, j = 7, 31  # row i follows ys, column j follows xs
    assert labels[i, j] == quadrant(np.array([[xs[j], ys[i]]]))[0]
    assert set(np.unique(labels)) == {0, 1, 2, 3}


def test_decision_regions_draws_regions_and_every_class(points):
    X, y = points
    xs, ys, labels = plots.decision_grid(quadrant, X, steps=30)
    fig, ax = plots.decision_regions(xs, ys, labels, X, y, title="t")
    assert ax.get_title() == "t"
    np.testing.assert_array_equal(np.asarray(ax.collections[0].get_array()).ravel(), labels.ravel())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"class {c}" for c in range(4)]
    plots.plt.close(fig)


def test_decision_regions_plotly_has_one_heatmap_and_a_trace_per_class(points):
    X, y = points
    xs, ys, labels = plots.decision_grid(quadrant, X, steps=30)
    fig = plots.decision_regions_plotly(xs, ys, labels, X, y)
    kinds = [t.type for t in fig.data]
    assert kinds == ["heatmap"] + ["scatter"] * 4
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), labels)
    assert sum(len(t.x) for t in fig.data[1:]) == len(X)


def test_show_plotly_sends_the_interactive_figure_then_a_png_stand_in(points, monkeypatch):
    """Are the plotly JSON and its PNG copy two outputs (JupyterLab shows a PNG over plotly in one bundle)?"""
    X, y = points
    grid = plots.decision_grid(quadrant, X, steps=30)
    shown = []
    monkeypatch.setattr(plots, "display", lambda bundle, raw: shown.append((bundle, raw)))
    static, _ = plots.decision_regions(*grid, X, y)
    plots.show_plotly(plots.decision_regions_plotly(*grid, X, y), static)
    (interactive, raw1), (still, raw2) = shown
    assert raw1 and raw2
    assert interactive["application/vnd.plotly.v1+json"]["data"][0]["type"] == "heatmap"
    assert "image/png" not in interactive and "application/vnd.plotly.v1+json" not in still
    assert base64.b64decode(still["image/png"]).startswith(b"\x89PNG")
    # The figure JSON only: plotly.js itself (megabytes) is not embedded.
    assert len(str(interactive)) < 300_000


def test_running_estimates_draws_one_line_per_estimator_and_feature():
    """Are there 2 estimators x 3 features lines per panel plus one dashed truth line per feature?"""
    steps = 10
    means = {"a": np.zeros((steps, 3)), "b": np.ones((steps, 3))}
    fig, axes = plots.running_estimates(means, means, np.arange(3.0), np.ones(3))
    assert len(axes) == 2
    for ax in axes:
        assert len(ax.lines) == 2 * 3 + 3
    assert axes[0].get_ylabel() == "running mean"


def test_line_plot_draws_each_series_on_a_log_axis():
    fig, ax = plots.line_plot({"a": [1, 10, 100], "b": [2, 3]}, "block", "variance", logy=True)
    assert ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert [l.get_label() for l in lines] == ["a", "b"]
    np.testing.assert_array_equal(lines[0].get_ydata(), [1, 10, 100])
    np.testing.assert_array_equal(lines[1].get_xdata(), [0, 1])
    plt.close(fig)


def test_line_plot_uses_given_x_and_axes():
    fig, ax = plt.subplots()
    got_fig, got_ax = plots.line_plot({"a": [5, 6]}, "x", "y", x=[3, 7], ax=ax)
    assert got_ax is ax and got_fig is fig and ax.get_yscale() == "linear"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [3, 7])
    plt.close(fig)


def test_scatter_grid_places_points_and_hides_spare_panels():
    pts = np.arange(10.0).reshape(5, 2)
    fig, axes = plots.scatter_grid([("layer 0", {"A": pts, "B": pts + 1})] * 3, ncols=2)
    assert axes.shape == (2, 2)
    offsets = axes[0, 0].collections[1].get_offsets()
    np.testing.assert_array_equal(np.asarray(offsets), pts + 1)
    assert axes[0, 1].get_title() == "layer 0"
    assert not axes[1, 1].axison
    plt.close(fig)


def runs() -> list[Run]:
    """Depths 1 and 2, two learning rates, both settings; BatchNorm at depth 2 never trains."""
    out = []
    for bn in (False, True):
        for depth in (1, 2):
            for lr, final in ((0.1, 1.0), (1.0, math.nan if depth == 2 else 1.5)):
                out.append(Run(depth, bn, lr, 0, [2.0, 3.0 if bn and depth == 2 else final], 0.5, 0.5))
    return out


def test_does_the_heatmap_cross_out_exactly_the_diverged_cells():
    fig, axes = plots.sweep_heatmaps(runs(), has_diverged)
    assert [ax.get_title() for ax in axes] == ["without BatchNorm", "with BatchNorm"]
    crosses = [sum(t.get_text() == "x" for t in ax.texts) for ax in axes]
    assert crosses == [1, 2]


def test_does_the_stable_lr_plot_show_both_settings_and_where_nothing_trains():
    fig, ax = plots.stable_lr_vs_depth(runs(), has_diverged)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["without BatchNorm", "with BatchNorm", "with BatchNorm: no lr trains"]
    assert list(ax.get_lines()[0].get_ydata()) == [1.0, 0.1]
    assert list(ax.get_lines()[2].get_xdata()) == [2]


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
