"""Training and evaluation loops for labs where training is a tool, not the exercise."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .testing import probe


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
    weight_decay: float = 0.0,
) -> list[float]:
    """Train with minibatches of shuffled (X, y) and cross-entropy; return the mean loss of each epoch.

    `optimizer` is "sgd" (plain) or "adam"; `weight_decay` adds weight_decay * p to each parameter's gradient
    (an L2 penalty, as torch's optimizers do). Used by residual_variance and adversarial_spheres.
    """
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=lr, weight_decay=weight_decay)
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
