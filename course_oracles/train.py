"""References of mlp_depth_sweep's evaluation and training-epoch exercises (the tests' oracles)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on (X, y) in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    logits = model(X)
    loss = F.cross_entropy(logits, y).item()
    acc = (logits.argmax(dim=1) == y).float().mean().item()
    model.train(was_training)
    return loss, acc


def sgd_epoch_reference(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    batch_size: int,
    order: torch.Tensor,
    zero_grad: str = "before_backward",
    train_mode: bool = True,
    initial_grads: Sequence[torch.Tensor] | None = None,
) -> float:
    """One epoch of plain SGD on (X, y), visiting the examples in `order`; returns the mean loss per example.

    The oracle of a hand-written training epoch: gradients from `torch.autograd.grad`, updates `p -= lr * g`.
    `initial_grads` (one per parameter) are gradients left in `.grad` from before the epoch. The other switches
    reproduce typical slips, so that a test names a cause only after matching it: `zero_grad="after_step"`
    (the first step adds the left-over gradients), `"never"` (every step adds all earlier gradients), and
    `train_mode=False` (BatchNorm left in eval mode).
    """
    if zero_grad not in ("before_backward", "after_step", "never"):
        raise ValueError(f"zero_grad must be 'before_backward', 'after_step' or 'never', not {zero_grad!r}")
    params = list(model.parameters())
    if initial_grads is None:
        stored = [torch.zeros_like(p) for p in params]  # what .grad holds
    else:
        stored = [g.detach().to(p).clone() for p, g in zip(params, initial_grads)]
    model.train(train_mode)
    total = 0.0
    for start in range(0, len(X), batch_size):
        idx = order[start:start + batch_size]
        if zero_grad == "before_backward":
            stored = [torch.zeros_like(p) for p in params]
        loss = F.cross_entropy(model(X[idx]), y[idx])
        grads = torch.autograd.grad(loss, params)
        stored = [s + g for s, g in zip(stored, grads)]
        with torch.no_grad():
            for p, s in zip(params, stored):
                p -= lr * s
        if zero_grad == "after_step":
            stored = [torch.zeros_like(p) for p in params]
        total += loss.item() * len(idx)
    return total / len(X)
