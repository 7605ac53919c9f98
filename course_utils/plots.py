"""Plotting helpers for the labs; each returns its figure and axes and never calls `plt.show()`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


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
