"""Adam with L2 regularization against AdamW's decoupled weight decay on small BatchNorm networks trained as a
stack, for norm_in_practice: how the norm of a scale-invariant weight and its per-step move settle under each rule.

Every network is Linear(no bias) -> BatchNorm1d(affine=False) -> ReLU, twice, then a Linear head; the first
weight W1 is scale-invariant (each of its rows is followed by BatchNorm). Only the optimizer's rule and the
factor the loss is multiplied by differ between the networks of a stack (the same initialization per seed and
the same minibatches for all):

- `"adam"`: torch.optim.Adam without weight decay;
- `"adam_l2"`: torch.optim.Adam(weight_decay=lambda), i.e. lambda * W added to the gradient before Adam
  normalizes it (the same as a penalty lambda/2 ||W||^2 added to the loss);
- `"adamw"`: torch.optim.AdamW(weight_decay=lambda), i.e. W <- (1 - lr lambda) W, then Adam's step.

Weight decay acts on the three weight matrices, not on the head's bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

Rule = Literal["adam", "adam_l2", "adamw"]
RULES: tuple[str, ...] = ("adam", "adam_l2", "adamw")
_BN_EPS = 1e-5  # nn.BatchNorm1d's epsilon


@dataclass
class DecayRun:
    """The first layer's weight W1 in every network of a stack, step by step; arrays (steps, rules, scales, seeds)."""

    rules: tuple[str, ...]
    loss_scales: tuple[float, ...]
    seeds: tuple[int, ...]
    norms: np.ndarray  # ||W1|| after each step
    relative_steps: np.ndarray  # ||W1 after - W1 before|| / ||W1 before|| of each step
    effective_decay: np.ndarray  # the decoupled weight decay that would pull ||W1|| in as hard as the rule's decay

    def tail_mean(self, what: str, last: int) -> np.ndarray:
        """The mean of `norms`, `relative_steps` or `effective_decay` over the last `last` steps, an array
        (rules, scales, seeds)."""
        if what not in ("norms", "relative_steps", "effective_decay"):
            raise ValueError(f"no recorded quantity named {what!r}: norms, relative_steps or effective_decay")
        values = getattr(self, what)
        if not 1 <= last <= len(values):
            raise ValueError(f"last must be between 1 and the {len(values)} steps recorded, not {last}")
        return values[-last:].mean(axis=0)


def initial_weights(d_in: int, width: int, classes: int, seed: int) -> list[torch.Tensor]:
    """W1 (width, d_in), W2 (width, width), W3 (classes, width) and the head's bias, uniform within
    1/sqrt(fan_in) as nn.Linear draws them, from a generator seeded with `seed`."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [((width, d_in), d_in), ((width, width), width), ((classes, width), width), ((classes,), width)]
    return [(torch.rand(shape, generator=gen) * 2 - 1) / fan_in ** 0.5 for shape, fan_in in shapes]


def reference_model(d_in: int, width: int, classes: int, seed: int) -> nn.Sequential:
    """The network one slice of the stack trains, as an nn.Sequential with the weights of `initial_weights`."""
    model = nn.Sequential(nn.Linear(d_in, width, bias=False), nn.BatchNorm1d(width, affine=False), nn.ReLU(),
                          nn.Linear(width, width, bias=False), nn.BatchNorm1d(width, affine=False), nn.ReLU(),
                          nn.Linear(width, classes))
    W1, W2, W3, b3 = initial_weights(d_in, width, classes, seed)
    with torch.no_grad():
        for layer, weight in zip((model[0], model[3], model[6]), (W1, W2, W3)):
            layer.weight.copy_(weight)
        model[6].bias.copy_(b3)
    return model


def _batchnorm(h: torch.Tensor) -> torch.Tensor:
    """BatchNorm in training mode without affine parameters, over the batch axis 1 of (networks, batch, units)."""
    mean, var = h.mean(1, keepdim=True), h.var(1, unbiased=False, keepdim=True)
    return (h - mean) / torch.sqrt(var + _BN_EPS)


def train(X: torch.Tensor, y: torch.Tensor, rules: Sequence[str], loss_scales: Sequence[float], seeds: Sequence[int],
          steps: int, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          width: int = 64, batch_size: int = 64, data_seed: int = 0, desc: str = "Adam, L2 and AdamW") -> DecayRun:
    """Train one network per (rule, loss scale, seed) on the same minibatches of (X, y), each minimizing its loss
    scale times the cross-entropy, and record its first weight's norm, relative step and effective decay."""
    unknown = [rule for rule in rules if rule not in RULES]
    if unknown:
        raise ValueError(f"unknown rules {unknown}: choose from {list(RULES)}")
    if min(loss_scales) <= 0:
        raise ValueError(f"loss scales must be positive, not {list(loss_scales)}")
    grid = [(rule, scale, seed) for rule in rules for scale in loss_scales for seed in seeds]
    n, classes, device = len(grid), int(y.max()) + 1, X.device
    inits = {seed: initial_weights(X.shape[1], width, classes, seed) for seed in seeds}
    params = [torch.stack([inits[seed][i] for _, _, seed in grid]).to(device).requires_grad_() for i in range(4)]
    weights = params[:3]
    scale = torch.tensor([s for _, s, _ in grid], device=device)
    l2 = torch.tensor([weight_decay if rule == "adam_l2" else 0.0 for rule, _, _ in grid], device=device)
    decoupled = torch.tensor([weight_decay if rule == "adamw" else 0.0 for rule, _, _ in grid], device=device)
    opt = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    gen = torch.Generator().manual_seed(data_seed)
    norms, moves, pulls = (torch.empty(steps, n, device=device) for _ in range(3))
    for step in tqdm(range(steps), desc=desc, leave=False):
        idx = torch.randint(0, len(X), (batch_size,), generator=gen).to(device)
        h = F.relu(_batchnorm(X[idx] @ weights[0].transpose(1, 2)))
        h = F.relu(_batchnorm(h @ weights[1].transpose(1, 2)))
        logits = h @ weights[2].transpose(1, 2) + params[3][:, None, :]
        ce = F.cross_entropy(logits.reshape(n * batch_size, classes), y[idx].repeat(n), reduction="none")
        penalty = sum(w.pow(2).flatten(1).sum(1) for w in weights) * l2 / 2
        opt.zero_grad()
        ((scale * ce.view(n, batch_size).mean(1)).sum() + penalty.sum()).backward()
        before = weights[0].detach().clone()
        with torch.no_grad():
            for w in weights:
                w.mul_((1 - lr * decoupled).view(n, 1, 1))
        opt.step()
        with torch.no_grad():
            after = weights[0]
            norms[step] = after.flatten(1).norm(dim=1)
            moves[step] = (after - before).flatten(1).norm(dim=1) / before.flatten(1).norm(dim=1)
            v_hat = opt.state[weights[0]]["exp_avg_sq"] / (1 - betas[1] ** (step + 1))
            damped = (after.pow(2) / (v_hat.sqrt() + eps)).flatten(1).sum(1) / after.pow(2).flatten(1).sum(1)
            pulls[step] = decoupled + l2 * damped
    shape = (steps, len(rules), len(loss_scales), len(seeds))
    return DecayRun(tuple(rules), tuple(float(s) for s in loss_scales), tuple(seeds),
                    *(a.cpu().numpy().astype(float).reshape(shape) for a in (norms, moves, pulls)))


def plot_decay_runs(run: DecayRun, window: int = 25, title: str | None = None) -> tuple[plt.Figure, np.ndarray]:
    """W1's norm (left) and its relative step as a moving average over `window` steps (right) against the step,
    the mean over seeds: one colour per rule, one line style per loss scale; `title` above both."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = ["-", "--", ":", "-."]
    for r, rule in enumerate(run.rules):
        for k, scale in enumerate(run.loss_scales):
            label, style = f"{rule}, loss x {scale:g}", styles[k % len(styles)]
            norms = run.norms[:, r, k].mean(axis=-1)
            axes[0].plot(np.arange(1, len(norms) + 1), norms, style, color=f"C{r}", label=label)
            moves = run.relative_steps[:, r, k].mean(axis=-1)
            width = min(window, len(moves))
            axes[1].plot(np.arange(width, len(moves) + 1), np.convolve(moves, np.ones(width) / width, mode="valid"),
                         style, color=f"C{r}", label=label)
    axes[0].set_ylabel("||W1||")
    axes[1].set_ylabel("||W1_{t+1} - W1_t|| / ||W1_t||")
    for ax in axes:
        ax.set_xlabel("step")
        ax.set_yscale("log")
    axes[1].legend(fontsize=7, ncol=len(run.rules))
    if title is not None:
        fig.suptitle(title)
    fig.tight_layout()
    return fig, axes
