"""Plotting helpers for the labs; each returns its figure and axes and never calls `plt.show()`."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch


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
