"""Plotting helpers for the labs; each returns its figure and axes and never calls `plt.show()`."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def line_plot(
    series: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    x: Sequence[float] | None = None,
    logy: bool = False,
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> tuple[plt.Figure, plt.Axes]:
    """One line per named series against `x` (default 0, 1, ...), optionally on a log y axis.

    Pass `ax` to draw into an existing panel. Used by residual_variance and bn_chaos.
    """
    fig, ax = plt.subplots(figsize=(6, 4)) if ax is None else (ax.figure, ax)
    for label, values in series.items():
        xs = np.arange(len(values)) if x is None else np.asarray(x)
        ax.plot(xs, np.asarray(values, dtype=float), marker="o", markersize=3, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig, ax


def scatter_grid(
    panels: Sequence[tuple[str, Mapping[str, np.ndarray]]],
    ncols: int = 4,
    size: float = 2.6,
) -> tuple[plt.Figure, np.ndarray]:
    """A grid of 2-D scatter plots: each panel is (title, {label: points of shape (n, 2)}).

    The same label gets the same colour in every panel; one legend sits on the first panel. Used by bn_chaos.
    """
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax, (title, groups) in zip(axes.flat, panels):
        for i, (label, points) in enumerate(groups.items()):
            pts = np.asarray(points)
            ax.scatter(pts[:, 0], pts[:, 1], s=8, color=f"C{i}", alpha=0.7, label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig, axes
