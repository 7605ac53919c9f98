"""How far each step of an optimizer moves a network's weights relative to their size, for norm_in_practice's
equilibrium of scale-invariant weights under weight decay and momentum."""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm


def relative_steps(model: nn.Module, layers: Sequence[str], X: torch.Tensor, y: torch.Tensor,
                   make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer], steps: int,
                   batch_size: int = 64, seed: int = 0, desc: str = "training") -> np.ndarray:
    """Train `model` on shuffled minibatches of (X, y) with cross-entropy and the optimizer `make_optimizer` builds
    from its parameters; return ||w_after - w_before|| / ||w_before|| of each named layer's weight at every step,
    an array (steps, len(layers))."""
    named = dict(model.named_modules())
    missing = [name for name in layers if name not in named]
    if missing:
        raise KeyError(f"the model has no layers named {missing}; it has {list(named)[1:]}")
    weights = [named[name].weight for name in layers]
    opt = make_optimizer(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    ratios = np.empty((steps, len(layers)))
    model.train()
    for step in tqdm(range(steps), desc=desc, leave=False):
        idx = torch.randint(0, len(X), (batch_size,), generator=gen).to(X.device)
        before = [w.detach().clone() for w in weights]
        opt.zero_grad()
        F.cross_entropy(model(X[idx]), y[idx]).backward()
        opt.step()
        ratios[step] = [((w.detach() - b).norm() / b.norm()).item() for w, b in zip(weights, before)]
    return ratios


def plot_relative_steps(curves: dict[str, np.ndarray], window: int = 25) -> tuple[plt.Figure, plt.Axes]:
    """Each curve's relative step size against the step, as a moving average over `window` steps (fewer for a
    shorter curve), on a log scale."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in curves.items():
        width = min(window, len(values))
        ax.plot(np.arange(width - 1, len(values)), np.convolve(values, np.ones(width) / width, mode="valid"), label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("||w_{t+1} - w_t|| / ||w_t||")
    ax.legend(fontsize=8)
    return fig, ax
