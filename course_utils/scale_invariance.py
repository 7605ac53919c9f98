"""Weights that a normalization layer makes scale-invariant, and what SGD does to their norms and directions.

A convolution or linear layer whose output reaches a normalization layer through positively homogeneous
modules only (ReLU, pooling) can be scaled by any c > 0 without changing the network's function: its
gradient is orthogonal to it, and shrinks as 1/c. `train_and_record` trains a model with SGD and records,
for each such group of parameters, its squared norm, the squared norm of its loss gradient and the angle
it turns by at every step. Used by norm_layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

NORMALIZATIONS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
HOMOGENEOUS = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity, nn.Dropout)


def scale_invariant_groups(model: nn.Sequential) -> list[tuple[str, list[nn.Parameter]]]:
    """(name, [weight, bias]) of every Conv2d or Linear layer of `model` whose output reaches a normalization
    layer through positively homogeneous modules only: the loss does not change when they are scaled together."""
    groups, pending = [], None
    for name, module in model.named_children():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            pending = (name, [p for p in (module.weight, module.bias) if p is not None])
        elif isinstance(module, NORMALIZATIONS):
            if pending is not None:
                groups.append(pending)
            pending = None
        elif not isinstance(module, HOMOGENEOUS):
            pending = None
    return groups


def flat(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """One group's parameters as one float64 vector."""
    return torch.cat([p.detach().reshape(-1).double() for p in params])


@dataclass
class Trace:
    """What `train_and_record` saw: one column per scale-invariant group, one row per step."""

    names: list[str]
    lr: float
    weight_decay: float
    sq_norms: np.ndarray  # (steps + 1, groups): squared norm of each group before each step, and after the last
    grad_sq_norms: np.ndarray  # (steps, groups): squared norm of each group's loss gradient (weight decay not included)
    angles: np.ndarray  # (steps, groups): angle in radians between a group before and after each step
    losses: np.ndarray  # (steps,): the training loss of each step's batch

    @property
    def effective_lr(self) -> np.ndarray:
        """lr / ||w||^2 before each step: the learning rate of the direction w / ||w|| (steps, groups)."""
        return self.lr / self.sq_norms[:-1]

    @property
    def relative_steps(self) -> np.ndarray:
        """lr * ||g|| / ||w|| before each step: the size of each gradient step relative to the weights (steps, groups)."""
        return self.lr * np.sqrt(self.grad_sq_norms) / np.sqrt(self.sq_norms[:-1])


def train_and_record(
    model: nn.Sequential,
    X: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    num_steps: int,
    weight_decay: float = 0.0,
    batch_size: int = 32,
    seed: int = 0,
    *,
    angle: Callable[[torch.Tensor, torch.Tensor], float],
    progress: bool = True,
) -> Trace:
    """Train `model` with torch.optim.SGD(lr, weight_decay) on shuffled batches of (X, y) for `num_steps` steps,
    recording the norms, gradient norms and turning angles of its scale-invariant groups; `angle(w_before,
    w_after)` is the lab's own measure of the angle a step turns a group by."""
    groups = scale_invariant_groups(model)
    if not groups:
        raise ValueError("the model has no layer followed by a normalization")
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    sq_norms, grad_sq_norms, angles, losses = [], [], [], []
    model.train()
    order, position = torch.randperm(len(X), generator=gen), 0
    for _ in tqdm(range(num_steps), desc=f"SGD, weight decay {weight_decay:g}", unit="step", disable=not progress,
                  leave=False):
        if position + batch_size > len(X):
            order, position = torch.randperm(len(X), generator=gen), 0
        idx = order[position:position + batch_size].to(X.device)
        position += batch_size
        opt.zero_grad()
        loss = F.cross_entropy(model(X[idx]), y[idx])
        loss.backward()
        before = [flat(params) for _, params in groups]
        sq_norms.append([float(w @ w) for w in before])
        grad_sq_norms.append([float(flat([p.grad for p in params]).square().sum()) for _, params in groups])
        opt.step()
        angles.append([float(angle(w, flat(params))) for w, (_, params) in zip(before, groups)])
        losses.append(loss.item())
    sq_norms.append([float(flat(params).square().sum()) for _, params in groups])
    return Trace([name for name, _ in groups], lr, weight_decay, np.array(sq_norms), np.array(grad_sq_norms),
                 np.array(angles), np.array(losses))


def plot_traces(traces: dict[str, Trace], layer_names: dict[str, str] | None = None,
                window: int = 20) -> tuple[plt.Figure, np.ndarray]:
    """Three panels against the step: each group's weight norm, its effective learning rate lr / ||w||^2 and its
    angular update (a moving average over `window` steps); one colour per group, one line style per trace."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    styles = ["-", "--", ":", "-."]
    for k, (label, trace) in enumerate(traces.items()):
        steps = np.arange(len(trace.angles))
        kernel = np.ones(window) / window
        for j, name in enumerate(trace.names):
            tag = f"{label}, {(layer_names or {}).get(name, name)}"
            style = dict(color=f"C{j}", ls=styles[k % len(styles)])
            axes[0].plot(np.arange(len(trace.sq_norms)), np.sqrt(trace.sq_norms[:, j]), label=tag, **style)
            axes[1].plot(steps, trace.effective_lr[:, j], **style)
            smooth = np.convolve(trace.angles[:, j], kernel, mode="valid")
            axes[2].plot(steps[window - 1:], smooth, **style)
    axes[0].set(xlabel="SGD step", ylabel="||w||", title="weight norm")
    axes[1].set(xlabel="SGD step", ylabel="lr / ||w||^2", yscale="log", title="effective learning rate")
    axes[2].set(xlabel="SGD step", ylabel="radians per step", yscale="log",
                title=f"angular update ({window}-step average)")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig, axes


def plot_layer_profile(trace: Trace, steps: Sequence[int]) -> tuple[plt.Figure, np.ndarray]:
    """Per layer (x axis): the gradient norm ||g|| and the relative step lr ||g|| / ||w|| at the given steps."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    layers = np.arange(1, len(trace.names) + 1)
    for k, step in enumerate(steps):
        axes[0].plot(layers, np.sqrt(trace.grad_sq_norms[step]), "-o", ms=3, color=f"C{k}", label=f"step {step}")
        axes[1].plot(layers, trace.relative_steps[step], "-o", ms=3, color=f"C{k}", label=f"step {step}")
    axes[0].set(xlabel="hidden layer", ylabel="||g||", yscale="log", title="gradient norm of each layer")
    axes[1].set(xlabel="hidden layer", ylabel="lr ||g|| / ||w||", yscale="log", title="relative step of each layer")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, axes
