"""References of adversarial_spheres' attack exercises: an iterative L2 attack that stays on the true sphere."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from course_utils.attacks import cross_entropy_loss


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ascend `loss_fn(model(X), y).sum()` by `num_steps` steps of `step_fn`, each followed by `project_fn`.

    Returns the path of iterates (num_steps + 1, n, d), starting at `X`, and a (num_steps + 1, n) bool mask of
    the misclassified ones. The model runs in eval mode and gets its mode back, also when it raises; `X` and the
    model's parameters, buffers and gradients stay as they were, and nothing returned carries a graph.
    """
    was_training = model.training
    model.eval()
    try:
        X_adv = X.detach().clone()
        path, wrong = [X_adv], []
        for _ in range(num_steps):
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
