"""Plotting helpers for the labs; each returns its figure and axes and never calls `plt.show()`."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .sweep import Diverged, Run, final_loss_grid, has_diverged, largest_stable_lr


def sweep_heatmaps(runs: Sequence[Run], diverged: Diverged = has_diverged) -> tuple[plt.Figure, np.ndarray]:
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


def stable_lr_vs_depth(runs: Sequence[Run], diverged: Diverged = has_diverged) -> tuple[plt.Figure, plt.Axes]:
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
