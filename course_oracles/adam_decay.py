"""References of norm_in_practice's Adam-step exercise (torch's own optimizers) and of its AdamW prediction."""

from __future__ import annotations

import math

import torch


def torch_adam_step(w: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int, lr: float,
                    weight_decay: float, decoupled: bool, betas: tuple[float, float] = (0.9, 0.999),
                    eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The step torch.optim.AdamW (decoupled) or torch.optim.Adam (L2) takes from moment estimates m, v left by
    `step - 1` earlier steps: (new w, new m, new v), new tensors."""
    param = torch.nn.Parameter(w.detach().clone())
    make = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = make([param], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
    opt.state[param] = {"step": torch.tensor(float(step - 1)), "exp_avg": m.detach().clone(),
                        "exp_avg_sq": v.detach().clone()}
    param.grad = grad.detach().clone()
    opt.step()
    state = opt.state[param]
    return param.detach().clone(), state["exp_avg"].clone(), state["exp_avg_sq"].clone()


def adamw_equilibrium_step(lr: float, weight_decay: float, beta1: float) -> float:
    """AdamW's equilibrium relative step of a scale-invariant weight in the white-noise model:
    sqrt(2 lr wd (1 - beta1) / (1 + beta1))."""
    return math.sqrt(2 * lr * weight_decay * (1 - beta1) / (1 + beta1))
