"""An iterative L2 fast-gradient attack that keeps its points on the sphere of their true class.

Reference answers for the adversarial_spheres lab, whose students write each of these pieces; the tests
feed the references of earlier pieces to later ones, so one slip costs one exercise.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm


def l2_step(X: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
    """Move each row of `X` by `step_size` along its own L2-normalized gradient row (a zero gradient stays put)."""
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return X + step_size * grad / norms.view(-1, *[1] * (grad.dim() - 1))


def project_to_sphere(X: torch.Tensor, y: torch.Tensor, radii: Sequence[float]) -> torch.Tensor:
    """Rescale each row of `X` onto the sphere of its true class: radius `radii[y]`, same direction."""
    target = torch.as_tensor(radii, dtype=X.dtype, device=X.device)[y]
    return X * (target / X.norm(dim=1)).unsqueeze(1)


def nearest_error_distance(X: torch.Tensor, X_path: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """For each point, the distance to the closest misclassified iterate of its attack path (inf if none).

    `X` is (n, d), `X_path` is (num_iterates, n, d) and `wrong` (num_iterates, n) marks misclassified iterates.
    """
    dist = (X_path - X.unsqueeze(0)).norm(dim=2)
    return dist.masked_fill(~wrong, float("inf")).min(dim=0).values


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example best wrong logit minus the true logit: positive exactly when the example is misclassified."""
    true = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, y.unsqueeze(1), float("-inf"))
    return others.max(dim=1).values - true


def cross_entropy_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy, shape (n,): the loss the attack ascends by default."""
    return F.cross_entropy(logits, y, reduction="none")


def sphere_attack(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    radii: Sequence[float],
    step_size: float,
    num_steps: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy_loss,
    step_fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] = l2_step,
    project_fn: Callable[[torch.Tensor, torch.Tensor, Sequence[float]], torch.Tensor] = project_to_sphere,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ascend `loss_fn(model(X), y).sum()` by `num_steps` L2 steps, projecting onto the true sphere after each one.

    Returns the path of iterates (num_steps + 1, n, d), starting at `X`, and a (num_steps + 1, n) bool mask of
    the misclassified ones. The model runs in eval mode (BatchNorm uses its running statistics) and gets its
    mode back, also when it raises; `X` and the model's parameters, buffers and gradients stay as they were,
    and nothing returned carries an autograd graph. The reference for the lab's own attack.
    """
    was_training = model.training
    model.eval()
    try:
        X_adv = X.detach().clone()
        path, wrong = [X_adv], []
        for _ in tqdm(range(num_steps), desc="attack", unit="step", disable=not progress, leave=False):
            X_adv = X_adv.detach().requires_grad_(True)
            logits = model(X_adv)
            wrong.append((logits.argmax(dim=1) != y).detach())
            (grad,) = torch.autograd.grad(loss_fn(logits, y).sum(), X_adv)
            with torch.no_grad():
                X_adv = project_fn(step_fn(X_adv.detach(), grad, step_size), y, radii)
            path.append(X_adv)
        with torch.no_grad():
            wrong.append(model(X_adv).argmax(dim=1) != y)
    finally:
        model.train(was_training)
    return torch.stack(path).detach(), torch.stack(wrong)


class RaisingModel(nn.Module):
    """A model whose forward pass always raises: tests use it to check that an attack restores the mode anyway."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this model's forward pass always raises")
