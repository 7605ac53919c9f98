"""Plot helpers draw what they are given and return their figure and axes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from course_utils import plots


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
