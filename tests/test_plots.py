"""Tests for the sweep plots in course_utils.plots: what they draw, checked on hand-made runs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

from course_utils import plots  # noqa: E402
from course_utils.sweep import Run  # noqa: E402


def runs() -> list[Run]:
    """Depths 1 and 2, two learning rates, both settings; BatchNorm at depth 2 never trains."""
    out = []
    for bn in (False, True):
        for depth in (1, 2):
            for lr, final in ((0.1, 1.0), (1.0, math.nan if depth == 2 else 1.5)):
                out.append(Run(depth, bn, lr, 0, [2.0, 3.0 if bn and depth == 2 else final], 0.5, 0.5))
    return out


def test_does_the_heatmap_cross_out_exactly_the_diverged_cells():
    fig, axes = plots.sweep_heatmaps(runs())
    assert [ax.get_title() for ax in axes] == ["without BatchNorm", "with BatchNorm"]
    crosses = [sum(t.get_text() == "x" for t in ax.texts) for ax in axes]
    assert crosses == [1, 2]


def test_does_the_stable_lr_plot_show_both_settings_and_where_nothing_trains():
    fig, ax = plots.stable_lr_vs_depth(runs())
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["without BatchNorm", "with BatchNorm", "with BatchNorm: no lr trains"]
    assert list(ax.get_lines()[0].get_ydata()) == [1.0, 0.1]
    assert list(ax.get_lines()[2].get_xdata()) == [2]
