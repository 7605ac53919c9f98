"""Plots of the adversarial_spheres lab: bands of the sphere, activation norms, robustness and adversarial points.

Each function returns its figure and axes and never calls `plt.show()`. Used by adversarial_spheres.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter
import numpy as np
import torch

from .spheres import meridian_coordinates

CLASS_COLORS = ("tab:blue", "tab:orange")  # inner sphere (class 0), outer sphere (class 1)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plot_band_share(dims: Sequence[int], measured: Sequence[float], h: float):
    """Measured share of sphere points with |x1| <= h against the dimension."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(dims, measured, "o-", color="C3", label="share of your samples")
    ax.set(xscale="log", xlabel="dimension d", ylabel=f"share with |x1| <= {h:g}", ylim=(0, 1.02),
           title=f"How much of the unit sphere lies within {h:g} of an equator")
    ax.legend(loc="lower right", fontsize=8)
    return fig, ax


def norm_histograms(norms: Mapping[str, torch.Tensor], y: torch.Tensor, layers: Sequence[int], bins: int = 40):
    """Histograms of per-example activation norms, one row per network and one column per layer (1-based).

    `norms[name]` has shape (num_layers, n) for the n examples of labels `y` (0 inner, 1 outer sphere). The
    x axis is logarithmic and shared along each row, so a spread over orders of magnitude shows as one.
    """
    y = _numpy(y)
    fig, axes = plt.subplots(len(norms), len(layers), figsize=(2.7 * len(layers), 2.1 * len(norms)), squeeze=False)
    for row, (name, values) in zip(axes, norms.items()):
        values = _numpy(values)
        chosen = values[[layer - 1 for layer in layers]]
        positive = chosen[chosen > 0]
        lo, hi = (positive.min(), positive.max()) if positive.size else (1e-3, 1.0)
        edges = np.geomspace(lo / 1.05, hi * 1.05, bins + 1)
        for ax, layer, norms_at in zip(row, layers, chosen):
            for c, label in ((0, "inner sphere"), (1, "outer sphere")):
                ax.hist(np.clip(norms_at[y == c], edges[0], edges[-1]), bins=edges, color=CLASS_COLORS[c], alpha=0.55,
                        label=label)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_yticks([])
            ax.set_title(f"{name}: layer {layer}", fontsize=8)
        row[0].set_ylabel("examples")
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("activation norm")
    fig.tight_layout()
    return fig, axes


def plot_robust_accuracy(eps: np.ndarray, curves: Mapping[str, np.ndarray], bounds: Mapping[str, np.ndarray]):
    """Accuracy under attack against the L2 budget: per model a line (mean over seeds) with a band (min to max),
    and dashed the isoperimetric bound for its error rate, which no classifier with that error rate exceeds.

    `curves[label]` and `bounds[label]` have shape (num_seeds, len(eps)).
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (label, acc) in enumerate(curves.items()):
        acc = np.asarray(acc)
        ax.plot(eps, acc.mean(axis=0), color=f"C{i}", label=label)
        ax.fill_between(eps, acc.min(axis=0), acc.max(axis=0), color=f"C{i}", alpha=0.2)
        ax.plot(eps, np.asarray(bounds[label]).mean(axis=0), "--", color=f"C{i}", lw=1)
    ax.plot([], [], "k--", lw=1, label="bound for the model's error rate")
    ax.set(xlabel="L2 budget epsilon (on the inner sphere)", ylabel="accuracy under attack", ylim=(0, 1.02),
           title="Inner-sphere points with no error found within epsilon")
    ax.legend(fontsize=7, loc="lower left")
    return fig, ax


def pair_planes(X: torch.Tensor, X_adv: torch.Tensor, others: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates in the plane through the centre, X[i] and X_adv[i], one plane per pair (rows of (n, d) tensors).

    The first axis is the direction of X[i], the second the part of X_adv[i] orthogonal to it, so X[i] lands on
    (|X[i]|, 0) and X_adv[i] at its angle from X[i]. Returns the (n, 2) coordinates of X_adv and, when given,
    of others[i] projected onto the plane of pair i.
    """
    X, X_adv = X.double(), X_adv.double()
    e1 = X / X.norm(dim=1, keepdim=True)
    rest = X_adv - (X_adv * e1).sum(dim=1, keepdim=True) * e1
    length = rest.norm(dim=1, keepdim=True)
    e2 = torch.where(length > 1e-9, rest / length.clamp_min(1e-300), torch.zeros_like(rest))  # no second axis: X_adv = X
    coords = lambda P: torch.stack([(P * e1).sum(dim=1), (P * e2).sum(dim=1)], dim=1)
    return coords(X_adv), (coords(others.double()) if others is not None else None)


def plot_attack_planes(panels: Sequence[tuple[str, torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor]]],
                       radii: Sequence[float] = (1.0, 1.3), eps: float = 0.1, ncols: int = 3, size: float = 3.3):
    """Each attacked point and its nearest error, drawn in the plane through the centre and both of them.

    A panel is (title, X (n, d), X_err (n, d), {label: data points (n, d)}): pair i is drawn in its own plane,
    where X[i] sits at (|X[i]|, 0) and X_err[i] at its angle from it, and data point i of each group is projected
    onto the same plane (pairs with X_err[i] = X[i], already misclassified, span no plane and get no data point). The spheres' circles are dashed, and the circle of radius `eps` around the attacked
    point is dotted.
    """
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    angle = np.linspace(0, 2 * np.pi, 400)
    top = 1.08 * max(radii)
    for ax, (title, X, X_err, data) in zip(axes.flat, panels):
        for r in radii:
            ax.plot(r * np.cos(angle), r * np.sin(angle), "k--", lw=0.6)
        moved = (X_err - X).norm(dim=1) > 1e-6  # a point that was already an error spans no plane with it
        for i, (label, points) in enumerate(data.items()):
            keep = moved[:len(points)]
            xy = _numpy(pair_planes(X[:len(points)][keep], X_err[:len(points)][keep], points[keep])[1])
            ax.scatter(xy[:, 0], xy[:, 1], s=4, color=CLASS_COLORS[i % 2], alpha=0.4, label=label)
        err = _numpy(pair_planes(X, X_err)[0])
        ax.scatter(err[:, 0], err[:, 1], s=10, color="tab:red", marker="x", lw=0.8, label="nearest error found")
        r0 = float(X.norm(dim=1).mean())
        ax.scatter([r0], [0.0], s=30, color="black", zorder=3, label="attacked point")
        ax.plot(r0 + eps * np.cos(angle), eps * np.sin(angle), ":", color="black", lw=0.8)
        ax.set(xlim=(-top, top), ylim=(-top, top), aspect="equal")
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    axes[0, 0].set_xlabel("along the attacked point", fontsize=8)
    axes[0, 0].set_ylabel("towards its nearest error", fontsize=8)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=7, markerscale=2)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig, axes


def plot_linear_and_meridian(X: torch.Tensor, y: torch.Tensor, direction: torch.Tensor, other: torch.Tensor):
    """The data in a plane through the centre (coordinates along `direction` and `other`) and in the meridian
    half-plane of `direction`: a linear projection mixes the spheres, the meridian chart separates them."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    u = direction / direction.norm()
    v = other - (other @ u) * u
    v = v / v.norm()
    planar = torch.stack([X @ u, X @ v], dim=1)
    meridian = meridian_coordinates(X, u)
    y = _numpy(y)
    for ax, coords, title in ((axes[0], planar, "projection onto a plane (u, v)"),
                              (axes[1], meridian, "meridian half-plane of u")):
        coords = _numpy(coords)
        for c, label in ((1, "outer sphere (class 1)"), (0, "inner sphere (class 0)")):
            ax.scatter(coords[y == c, 0], coords[y == c, 1], s=4, color=CLASS_COLORS[c], alpha=0.5, label=label)
        ax.set(aspect="equal", title=title)
    axes[0].set(xlabel="x . u", ylabel="x . v")
    axes[1].set(xlabel="x . u", ylabel="|x - (x . u) u|", ylim=(0, None))
    axes[1].legend(fontsize=7, loc="upper right", markerscale=3)
    fig.tight_layout()
    return fig, axes

