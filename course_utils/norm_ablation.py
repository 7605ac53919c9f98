"""Stacks of ReLU MLPs whose hidden layers use a normalization passed in, trained side by side with SGD.

A `NormStack` holds M MLPs of one architecture with a leading model axis on every weight; activations are
laid out (M, batch, units), so each layer of every model is one batched matrix product and the
normalization (the student's own function, `normalize(h, kind)`) sees all M models at once. Models in one
stack share a normalization kind; several stacks train on the same minibatches with `train_stacks`, which
also records how a layer's input distribution moves from step to step. `gradient_predictiveness` measures
how far the gradient changes along the gradient direction (Santurkar et al., 2018). Used by
why_batchnorm_helps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

Normalize = Callable[..., torch.Tensor]  # normalize(h, kind) -> tensor of h's shape


class NormStack(nn.Module):
    """M ReLU MLPs: `depth` hidden layers of `width` units, each Linear -> normalize -> affine -> (noise) -> ReLU.

    Args:
        normalize: normalize(h, kind) for h of shape (M, batch, units), statistics over the batch.
        kind: the normalization kind passed to `normalize` ("none" skips the affine map too).
        seeds: one seed per model, for its initial weights.
        weight_scale: the standard deviation of every weight at initialization, one per model (default He).
        train_affine: whether the affine map's gamma and beta are trained (False: frozen at 1 and 0).
        noise: strength of the non-stationary noise added after the affine map in training (0: none).
    """

    def __init__(self, normalize: Normalize, kind: str, seeds: Sequence[int], in_features: int, width: int,
                 depth: int, out_features: int, weight_scale: Sequence[float] | None = None,
                 train_affine: bool = True, noise: float = 0.0):
        super().__init__()
        if weight_scale is not None and len(weight_scale) != len(seeds):
            raise ValueError(f"one weight scale per model: {len(seeds)} seeds, {len(weight_scale)} scales")
        if depth < 1 or noise < 0:
            raise ValueError("NormStack needs at least one hidden layer and a noise strength of at least 0")
        self.normalize, self.kind, self.noise = normalize, kind, noise
        self.num_models, self.depth = len(seeds), depth
        sizes = [in_features] + [width] * depth + [out_features]
        weights = [[] for _ in sizes[1:]]
        for m, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(int(seed))
            for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                std = math.sqrt(2 / fan_in) if weight_scale is None else float(weight_scale[m])
                weights[i].append(torch.randn(fan_out, fan_in, generator=gen) * std)
        M = self.num_models
        self.weights = nn.ParameterList([nn.Parameter(torch.stack(w).transpose(1, 2).contiguous()) for w in weights])  # (M, in, out)
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(M, 1, n)) for n in sizes[1:]])
        affine = kind != "none"
        self.gammas = nn.ParameterList([nn.Parameter(torch.ones(M, 1, width), requires_grad=train_affine)
                                        for _ in range(depth if affine else 0)])
        self.betas = nn.ParameterList([nn.Parameter(torch.zeros(M, 1, width), requires_grad=train_affine)
                                       for _ in range(depth if affine else 0)])
        self.noise_gen: torch.Generator | None = None
        self.recorded: list[tuple[torch.Tensor, torch.Tensor]] = []  # the recorded layer's input statistics, per pass
        self.record_layer: int | None = None

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits (M, batch, out) for X of shape (batch, in), shared, or (M, batch, in), one batch per model."""
        h = X if X.dim() == 3 else X.unsqueeze(0).expand(self.num_models, -1, -1)
        for i in range(self.depth):
            if i == self.record_layer:
                self._record(h)
            h = torch.baddbmm(self.biases[i], h, self.weights[i])
            if self.kind != "none":
                h = self.normalize(h, self.kind) * self.gammas[i] + self.betas[i]
            if self.noise and self.training:
                h = h * self._noise(h.shape[-1]).exp() + self._noise(h.shape[-1])
            h = torch.relu(h)
        if self.record_layer == self.depth:
            self._record(h)
        return torch.baddbmm(self.biases[-1], h, self.weights[-1])

    def _noise(self, units: int) -> torch.Tensor:
        """Uniform in [-noise, noise] per model and unit, (M, 1, units), redrawn at every call."""
        u = torch.rand(self.num_models, 1, units, generator=self.noise_gen)
        return ((2 * u - 1) * self.noise).to(self.biases[0])

    def _record(self, h: torch.Tensor) -> None:
        """Keep each unit's mean and standard deviation over the batch, both (M, units), in training mode only."""
        if self.training:
            h = h.detach()
            self.recorded.append((h.mean(dim=1), h.std(dim=1, unbiased=False)))

    def model_norms(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """The L2 norm of each model's slice of a list of stacked tensors (parameters or gradients), shape (M,)."""
        return torch.sqrt(sum(t.double().pow(2).reshape(self.num_models, -1).sum(1) for t in tensors))


def per_model_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each model's mean cross-entropy, shape (M,), for logits (M, batch, classes) and labels (batch,) or (M, batch)."""
    y = y if y.dim() == 2 else y.unsqueeze(0).expand(logits.shape[0], -1)
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(dim=1)


@torch.no_grad()
def loss(stack: NormStack, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each model's mean cross-entropy on (X, y), shape (M,), in evaluation mode: the statistics of all of X as one
    batch and no injected noise; the stack's mode is restored."""
    was_training = stack.training
    stack.eval()
    value = per_model_loss(stack(X), y)
    stack.train(was_training)
    return value.cpu()


@torch.no_grad()
def accuracy(stack: NormStack, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each model's accuracy on (X, y), shape (M,), normalizing with the statistics of all of X as one batch."""
    was_training = stack.training
    stack.eval()
    correct = (stack(X).argmax(dim=2) == y).float().mean(dim=1)
    stack.train(was_training)
    return correct.cpu()


@dataclass
class History:
    """What `train_stacks` records for one stack: losses (epochs, M), test accuracy (M,), input shift (M,)."""

    train_loss: torch.Tensor
    train_accuracy: torch.Tensor
    test_accuracy: torch.Tensor
    input_shift: torch.Tensor = field(default_factory=lambda: torch.empty(0))


def input_shift(recorded: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Mean step-to-step change of a layer's input distribution, per model: the change of each unit's mean plus
    the change of its standard deviation over the batch, averaged over units and steps, in units of the
    first step's standard deviation (averaged over units). `recorded`: per step, (means, stds), each (M, units)."""
    means = torch.stack([m for m, _ in recorded])  # (steps, M, units)
    stds = torch.stack([s for _, s in recorded])
    change = ((means[1:] - means[:-1]).abs() + (stds[1:] - stds[:-1]).abs()).mean(dim=(0, 2))
    return (change / stds[0].mean(dim=1).clamp_min(1e-12)).cpu()


def train_stacks(stacks: dict[str, NormStack], X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor,
                 y_test: torch.Tensor, num_epochs: int, lr: float | Sequence[float], batch_size: int = 100,
                 momentum: float = 0.9, seed: int = 0, record_layer: int | None = None,
                 after_epoch: Callable[[str, NormStack], None] | None = None,
                 progress: bool = True) -> dict[str, History]:
    """Train every stack with SGD with momentum on the same shuffled minibatches; one History per stack.

    `lr` is one learning rate, or one per model (the same list for every stack). With `record_layer` = k the
    input statistics of hidden layer k (0: the data) are recorded at every step, and `History.input_shift`
    summarizes how they move (see `input_shift`). `after_epoch(name, stack)` runs after every epoch. A model
    whose loss is not finite stops learning (its loss stays NaN); the others are unaffected.
    """
    gen = torch.Generator().manual_seed(seed)
    losses = {name: [] for name in stacks}
    velocity = {}
    for name, s in stacks.items():
        s.train()
        s.noise_gen = torch.Generator().manual_seed(seed + 1)
        s.record_layer, s.recorded = record_layer, []
        rates = torch.as_tensor(lr, dtype=torch.float32).expand(s.num_models)
        s.rates = rates.to(X.device).view(-1, 1, 1)
        velocity[name] = [torch.zeros_like(p) for p in s.parameters() if p.requires_grad]
    steps = len(X) // batch_size
    for _ in tqdm(range(num_epochs), desc="training", unit="epoch", disable=not progress, leave=False):
        order = torch.randperm(len(X), generator=gen).to(X.device)
        totals = {name: torch.zeros(s.num_models, dtype=torch.float64, device=X.device) for name, s in stacks.items()}
        for step in range(steps):  # whole batches only
            idx = order[step * batch_size:(step + 1) * batch_size]
            for name, s in stacks.items():
                params = [p for p in s.parameters() if p.requires_grad]
                loss = per_model_loss(s(X[idx]), y[idx])
                grads = torch.autograd.grad(loss.sum(), params)
                with torch.no_grad():
                    for p, v, g in zip(params, velocity[name], grads):
                        v.mul_(momentum).add_(g)
                        p.sub_(s.rates.view(-1, *[1] * (p.dim() - 1)) * v)
                totals[name] += loss.detach().double()
        for name, s in stacks.items():
            losses[name].append((totals[name] / steps).cpu())
            if after_epoch is not None:
                after_epoch(name, s)
    out = {}
    for name, s in stacks.items():
        shift = input_shift(s.recorded) if record_layer is not None else torch.empty(0)
        s.record_layer, s.recorded = None, []
        out[name] = History(torch.stack(losses[name]).float(), accuracy(s, X, y), accuracy(s, X_test, y_test), shift)
    return out


def gradient_predictiveness(stack: NormStack, X: torch.Tensor, y: torch.Tensor,
                            step_sizes: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """How well the gradient at the weights predicts the gradient after a step along it, per model.

    For each step size eta, moves every model by -eta * g (g its gradient on the batch (X, y), in training mode
    without noise, recording nothing) and returns the largest gradient change ||g(eta) - g|| / ||g|| and the largest effective
    beta-smoothness ||g(eta) - g|| / ||eta g|| over the step sizes, each of shape (M,). The stack is unchanged.
    """
    params = [p for p in stack.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in params]
    noise, stack.noise = stack.noise, 0.0
    record_layer, stack.record_layer = stack.record_layer, None  # a measurement is no training step
    was_training = stack.training
    stack.train()

    def grad() -> list[torch.Tensor]:
        loss = per_model_loss(stack(X), y).sum()
        return [g.detach() for g in torch.autograd.grad(loss, params)]

    try:
        g0 = grad()
        g0_norm = stack.model_norms(g0)
        change, beta = torch.zeros_like(g0_norm), torch.zeros_like(g0_norm)
        for eta in step_sizes:
            with torch.no_grad():
                for p, s, g in zip(params, saved, g0):
                    p.copy_(s - eta * g)
            diff = stack.model_norms([a - b for a, b in zip(grad(), g0)])
            change = torch.maximum(change, diff / g0_norm)
            beta = torch.maximum(beta, diff / (eta * g0_norm))
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
        stack.noise, stack.record_layer = noise, record_layer
        stack.train(was_training)
    return change.cpu().float(), beta.cpu().float()
