"""Training and evaluation loops for labs where training is a tool, not the exercise."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm


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
