"""Training and evaluation loops for labs where training is a tool, not the exercise."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .testing import probe


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


def fit(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    num_epochs: int,
    lr: float,
    batch_size: int = 128,
    optimizer: str = "sgd",
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train with minibatches of shuffled (X, y) and cross-entropy; return the mean loss of each epoch.

    `optimizer` is "sgd" (plain) or "adam". Used by residual_variance and adversarial_spheres.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam" else torch.optim.SGD(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in tqdm(range(num_epochs), desc="training", unit="epoch", disable=not progress, leave=False):
        order = torch.randperm(len(X), generator=gen).to(X.device)
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
                continue  # BatchNorm cannot train on a batch of one
            opt.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return losses


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
    `train_mode=False` (BatchNorm left in eval mode). Used by mlp_depth_sweep's tests.
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


@torch.no_grad()
def batch_mode_loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 32,
                    seed: int = 0) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` in training mode, on shuffled batches of `batch_size`.

    This is the network SGD trains: BatchNorm normalizes each batch with its own statistics. Running statistics,
    parameters and the model's mode are left as they were; a trailing batch of one is left out under
    BatchNorm. Used by mlp_depth_sweep to compare a network's two modes.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    was_training = model.training
    model.train()
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed)).to(X.device)
    total, correct, count = 0.0, 0.0, 0
    for start in range(0, len(X), batch_size):
        idx = order[start:start + batch_size]
        if len(idx) < 2 and norms:
            continue
        logits = model(X[idx])
        total += F.cross_entropy(logits, y[idx], reduction="sum").item()
        correct += (logits.argmax(dim=1) == y[idx]).sum().item()
        count += len(idx)
    for m, state in zip(norms, saved):
        m.load_state_dict(state)
    model.train(was_training)
    return total / count, correct / count


@probe
def call_with_gradients(func: Callable, model: nn.Module, grads: list[torch.Tensor], *args: Any) -> Any:
    """Give every parameter of `model` the gradient `grads[i]` (left over, as after an earlier backward pass),
    then return `func(model, *args)`. In the grader this runs in the student's kernel, where the gradients
    must be. Used by mlp_depth_sweep's test of stale gradients."""
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone().to(p.dtype)
    return func(model, *args)
