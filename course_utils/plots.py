"""Plotting helpers for the labs; each returns its figure and axes and never calls `plt.show()`."""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Callable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import display
from matplotlib.figure import Figure

from .sweep import Diverged, Run, final_loss_grid, largest_stable_lr

# Light fills for class regions and strong colours for the points, one pair per class.
CLASS_FILLS = ["#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1", "#d9d9d9"]
CLASS_POINTS = ["#2171b5", "#d94801", "#238b45", "#6a51a3", "#cb181d", "#525252"]


def decision_grid(
    predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, steps: int = 120, margin: float = 0.15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate a classifier on a `steps` x `steps` grid around 2-D points `X`: (xs, ys, labels[ys, xs]).

    The grid is one batch, so `predict` must not depend on batch statistics. Used by bn_from_scratch.
    """
    lo, hi = X.min(0), X.max(0)
    pad = margin * (hi - lo)
    xs, ys = (np.linspace(lo[i] - pad[i], hi[i] + pad[i], steps) for i in range(2))
    gx, gy = np.meshgrid(xs, ys)
    labels = np.asarray(predict(np.column_stack([gx.ravel(), gy.ravel()]))).reshape(gx.shape)
    return xs, ys, labels


def decision_regions(xs: np.ndarray, ys: np.ndarray, labels: np.ndarray, X: np.ndarray, y: np.ndarray,
                     title: str = "") -> tuple[plt.Figure, plt.Axes]:
    """Static picture of class regions (from `decision_grid`), one colour per grid cell, with the points `X` coloured by `y`.

    Used by bn_from_scratch.
    """
    num_classes = int(max(labels.max(), y.max())) + 1
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    cmap = matplotlib.colors.ListedColormap(CLASS_FILLS[:num_classes])
    ax.pcolormesh(xs, ys, labels, cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5, shading="nearest")
    for c in range(num_classes):
        ax.scatter(*X[y == c].T, s=14, color=CLASS_POINTS[c], edgecolor="white", linewidth=0.4, label=f"class {c}")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return fig, ax


def decision_regions_plotly(xs: np.ndarray, ys: np.ndarray, labels: np.ndarray, X: np.ndarray, y: np.ndarray,
                            title: str = "") -> go.Figure:
    """Interactive version of `decision_regions`: a plotly heatmap of the regions with the points on top.

    Used by bn_from_scratch.
    """
    num_classes = int(max(labels.max(), y.max())) + 1
    scale = [[edge / num_classes, CLASS_FILLS[c]] for c in range(num_classes) for edge in (c, c + 1)]
    fig = go.Figure(go.Heatmap(  # one flat colour per grid cell, like the static version: no interpolation
        x=xs, y=ys, z=labels, colorscale=scale, zmin=-0.5, zmax=num_classes - 0.5, showscale=False,
        hoverinfo="skip",
    ))
    for c in range(num_classes):
        fig.add_scatter(x=X[y == c, 0], y=X[y == c, 1], mode="markers", name=f"class {c}",
                        marker=dict(color=CLASS_POINTS[c], size=6, line=dict(color="white", width=0.5)))
    fig.update_layout(title=title, width=620, height=480, xaxis_title="x1", yaxis_title="x2",
                      margin=dict(l=50, r=20, t=50, b=40))
    return fig


def show_plotly(fig: go.Figure, static: plt.Figure) -> None:
    """Display the interactive `fig`, then a PNG of `static` as its stand-in, as two outputs.

    JupyterLab draws the plotly figure; exported HTML and nbgrader feedback, where plotly's
    JavaScript does not run, still show the PNG. They must be separate outputs: given one bundle
    holding both, JupyterLab shows the PNG. Nothing embeds plotly.js. Used by bn_from_scratch.
    """
    buffer = io.BytesIO()
    static.savefig(buffer, format="png", dpi=100)
    plt.close(static)
    title = fig.layout.title.text or "untitled"
    display({"application/vnd.plotly.v1+json": json.loads(fig.to_json()),
             "text/plain": f"<interactive plotly figure: {title}>"}, raw=True)
    display({"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
             "text/plain": f"<static copy of the figure above: {title}>"}, raw=True)


def running_estimates(
    means: dict[str, np.ndarray],
    stds: dict[str, np.ndarray],
    true_mean: np.ndarray,
    true_std: np.ndarray,
) -> tuple[Figure, np.ndarray]:
    """Running mean and std per feature over training steps, one line style per estimator, truth dashed.

    `means[label]` and `stds[label]` have shape (steps, features). Used by bn_train_eval.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", ":", "-."]
    for ax, estimates, truth, what in [(axes[0], means, true_mean, "mean"), (axes[1], stds, true_std, "std")]:
        for style, (label, values) in zip(styles, estimates.items()):
            for j in range(values.shape[1]):
                ax.plot(np.arange(1, len(values) + 1), values[:, j], style, color=colors[j % len(colors)],
                        label=f"{label}, feature {j}")
        for j, value in enumerate(truth):
            ax.axhline(value, color=colors[j % len(colors)], ls="--", lw=1, alpha=0.6)
        ax.set(xlabel="training step (batches seen)", ylabel=f"running {what}",
               title=f"running {what} (dashed: true {what})")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig, axes


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


def sweep_heatmaps(runs: Sequence[Run], diverged: Diverged) -> tuple[plt.Figure, np.ndarray]:
    """Final training loss over depth x learning rate, one panel per setting; diverged cells crossed out.

    `diverged` tells from a loss curve whether a run diverged. Used by mlp_depth_sweep.
    """
    settings = sorted({r.batchnorm for r in runs})
    grids = [final_loss_grid(runs, bn, diverged) for bn in settings]
    finite = [float(v) for _, _, loss, bad in grids for v in loss[~bad]]
    vmax = max(finite) if finite else 1.0
    fig, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings), 4.5), squeeze=False, sharey=True)
    for ax, bn, (depths, lrs, loss, bad) in zip(axes[0], settings, grids):
        shown = np.ma.masked_array(loss.numpy(), mask=bad.numpy())
        image = ax.imshow(shown, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto", origin="lower")
        for i, j in bad.nonzero().tolist():
            ax.text(j, i, "x", ha="center", va="center", color="tab:red", fontsize=11, fontweight="bold")
        ax.set_facecolor("0.85")
        ax.set_xticks(range(len(lrs)), [f"{lr:.0e}" for lr in lrs], rotation=60, fontsize=8)
        ax.set_yticks(range(len(depths)), [str(d) for d in depths])
        ax.set_xlabel("learning rate")
        ax.set_title("with BatchNorm" if bn else "without BatchNorm")
    axes[0, 0].set_ylabel("hidden layers")
    fig.colorbar(image, ax=axes[0].tolist(), label="final training loss (x: diverged)")
    return fig, axes[0]


def stable_lr_vs_depth(runs: Sequence[Run], diverged: Diverged) -> tuple[plt.Figure, plt.Axes]:
    """The largest learning rate that still trains against depth, one line per setting. Used by mlp_depth_sweep."""
    best = largest_stable_lr(runs, diverged)
    fig, ax = plt.subplots(figsize=(6, 4))
    floor = min(r.lr for r in runs)
    for bn, style, color in ((False, "o-", "tab:blue"), (True, "s-", "tab:orange")):
        name = "with BatchNorm" if bn else "without BatchNorm"
        depths = sorted(d for b, d in best if b == bn)
        ax.plot(depths, [best[bn, d] for d in depths], style, color=color, label=name)
        none = [d for d in depths if best[bn, d] != best[bn, d]]  # NaN: no learning rate of the grid trains
        if none:
            ax.plot(none, [floor] * len(none), "v", color=color, markersize=10, label=f"{name}: no lr trains")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("hidden layers")
    ax.set_ylabel("largest learning rate that trains")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return fig, ax


def plot_sphere_slice(X: torch.Tensor, level: float, width: float = 0.02):
    """Points of a 3-D sphere seen from above, with the slice |x3 - level| < width and its circle.

    The slice is a circle of radius sqrt(r^2 - level^2): fixing the remaining coordinates fixes the
    sum of squares left for (x1, x2). Used by adversarial_spheres.
    """
    X = X.detach().cpu().numpy()
    in_slice = np.abs(X[:, 2] - level) < width
    radius = math.sqrt(max(float(np.mean(np.sum(X**2, axis=1))) - level**2, 0.0))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(X[:, 0], X[:, 1], s=2, c="lightgray", label="all points (x1, x2)")
    ax.scatter(X[in_slice, 0], X[in_slice, 1], s=6, c="C3", label=f"slice |x3 - {level:g}| < {width:g}")
    angle = np.linspace(0, 2 * np.pi, 200)
    ax.plot(radius * np.cos(angle), radius * np.sin(angle), "k--", lw=1, label=f"circle of radius {radius:.2f}")
    ax.set(xlabel="x1", ylabel="x2", aspect="equal", title="A slice of a sphere in 3-D is a circle")
    ax.legend(loc="upper right", fontsize=7)
    return fig, ax


def plot_concentration(dims: list[int], nearest: list[float]):
    """Nearest-pair distance of random unit-sphere points against the dimension, with sqrt(2) for reference.

    Used by adversarial_spheres.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(dims, nearest, "o-", label="closest pair among the points")
    ax.axhline(math.sqrt(2), color="k", ls="--", lw=1, label="sqrt(2): two orthogonal unit vectors")
    ax.set(xscale="log", xlabel="dimension d", ylabel="distance", ylim=(0, 1.6),
           title="Random points on a high-dimensional sphere are all far apart")
    ax.legend(loc="lower right")
    return fig, ax


def plot_accuracy_under_attack(eps: np.ndarray, curves: dict[str, np.ndarray]):
    """Accuracy under attack against the L2 budget, one line per model with a band over its seeds.

    `curves[label]` has shape (num_seeds, len(eps)); the line is the mean, the band the min-max range.
    Used by adversarial_spheres.
    """
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (label, acc) in enumerate(curves.items()):
        acc = np.asarray(acc)
        ax.plot(eps, acc.mean(axis=0), color=f"C{i}", label=label)
        ax.fill_between(eps, acc.min(axis=0), acc.max(axis=0), color=f"C{i}", alpha=0.2)
    ax.set(xlabel="L2 budget epsilon", ylabel="accuracy under attack", ylim=(0, 1.02),
           title="Fraction of test points with no error within epsilon")
    ax.legend(fontsize=8)
    return fig, ax
