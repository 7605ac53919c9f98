"""Learning-rate x depth sweeps of ReLU MLPs, trained one model at a time or many at once.

`train_one` is the reference: one `cu.models.mlp`, trained by `cu.train.fit` one epoch at a time.
`sweep(..., vectorized=True)` trains every learning rate and seed of one depth together as a stack of
models (batched matrix products, BatchNorm over the stacked columns) and gives the same losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .models import mlp
from .train import evaluate, fit


@dataclass
class Run:
    """One trained model of a sweep: its setting and what training did to it."""

    depth: int
    batchnorm: bool
    lr: float
    seed: int
    losses: list[float]  # training loss (eval mode) at initialization and after each epoch
    train_acc: float  # after the last epoch trained
    test_acc: float  # NaN when no test set was given

    @property
    def start_loss(self) -> float:
        return self.losses[0]

    @property
    def final_loss(self) -> float:
        return self.losses[-1]


Diverged = Callable[[Sequence[float]], bool]


def has_diverged(losses: Sequence[float]) -> bool:
    """True when a loss curve ever becomes NaN or infinite, or ends above its starting loss."""
    return any(not math.isfinite(loss) for loss in losses) or losses[-1] > losses[0]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of the minibatch order of one epoch of the run with seed `seed`."""
    return 10_000 * seed + epoch


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, X: torch.Tensor) -> None:
    """Set each BatchNorm's running statistics to those of X passed through the model in training mode.

    Fresh running statistics (mean 0, variance 1) describe a different network than the one SGD
    trains, so an eval-mode loss at initialization needs this first. Used by mlp_depth_sweep.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training, momenta = model.training, [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0  # the running statistics become those of this one batch
    model.train()
    model(X)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def train_one(
    X: torch.Tensor,
    y: torch.Tensor,
    depth: int,
    batchnorm: bool,
    lr: float,
    seed: int = 0,
    num_epochs: int = 3,
    batch_size: int = 32,
    width: int = 64,
    num_classes: int = 10,
    X_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
) -> Run:
    """Train one MLP with minibatch SGD, stopping at the first epoch whose loss is NaN or infinite.

    Losses are eval-mode training losses, the first after `calibrate_batchnorm` at initialization.
    The reference that `sweep(..., vectorized=True)` must reproduce. Used by mlp_depth_sweep.
    """
    torch.manual_seed(seed)
    model = mlp(X.shape[1], width, depth, num_classes, batchnorm).to(X)
    calibrate_batchnorm(model, X)
    loss, train_acc = evaluate(model, X, y)
    losses = [loss]
    for epoch in range(num_epochs):
        fit(model, X, y, 1, lr, batch_size=batch_size, seed=epoch_seed(seed, epoch), progress=False)
        loss, train_acc = evaluate(model, X, y)
        losses.append(loss)
        if not math.isfinite(loss):
            break
    test_acc = evaluate(model, X_test, y_test)[1] if X_test is not None else math.nan
    return Run(depth, batchnorm, lr, seed, losses, train_acc, test_acc)


class _Stack:
    """The parameters and BatchNorm buffers of M same-shaped MLPs, stacked along a leading model axis."""

    def __init__(self, models: list[nn.Sequential]):
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        norms = [[m for m in model if isinstance(m, nn.BatchNorm1d)] for model in models]
        stack = lambda tensors: torch.stack([t.detach() for t in tensors])
        self.weights = [stack([ls[i].weight.T for ls in linears]) for i in range(len(linears[0]))]  # (M, in, out)
        self.biases = [stack([ls[i].bias for ls in linears]).unsqueeze(1) for i in range(len(linears[0]))]  # (M, 1, out)
        self.gammas = [stack([ns[i].weight for ns in norms]) for i in range(len(norms[0]))]  # (M, width)
        self.betas = [stack([ns[i].bias for ns in norms]) for i in range(len(norms[0]))]  # (M, width)
        self.means = [stack([ns[i].running_mean for ns in norms]) for i in range(len(norms[0]))]  # (M, width)
        self.vars = [stack([ns[i].running_var for ns in norms]) for i in range(len(norms[0]))]  # (M, width)
        self.momentum = 0.1  # of the running statistics, as in nn.BatchNorm1d
        for p in self.params():
            p.requires_grad_(True)

    @torch.no_grad()
    def calibrate(self, X: torch.Tensor) -> None:
        """Running statistics := those of X in training mode (as `calibrate_batchnorm` does per model)."""
        self.momentum = 1.0
        self.forward(X, training=True)
        self.momentum = 0.1

    def params(self) -> list[torch.Tensor]:
        return self.weights + self.biases + self.gammas + self.betas

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every model whose row is not in `rows` (e.g. the ones that diverged)."""
        pick = lambda tensors, grad: [t[rows].detach().requires_grad_(grad) for t in tensors]
        self.weights, self.biases = pick(self.weights, True), pick(self.biases, True)
        self.gammas, self.betas = pick(self.gammas, True), pick(self.betas, True)
        self.means, self.vars = pick(self.means, False), pick(self.vars, False)

    def forward(self, X: torch.Tensor, training: bool) -> torch.Tensor:
        """Logits (M, B, classes) for per-model inputs X (M, B, in), or for shared inputs X (B, in)."""
        W, b = self.weights[0], self.biases[0]
        if X.dim() == 2:  # one matrix product for all models: (B, in) @ (in, M * out)
            M, fan_in, out = W.shape
            h = (X @ W.permute(1, 0, 2).reshape(fan_in, M * out)).reshape(len(X), M, out).transpose(0, 1) + b
        else:
            h = torch.baddbmm(b, X, W)
        for i in range(1, len(self.weights)):
            h = torch.relu(h)
            if self.gammas:
                h = self._batchnorm(h, i - 1, training)
            h = torch.baddbmm(self.biases[i], h, self.weights[i])
        return h

    def _batchnorm(self, h: torch.Tensor, i: int, training: bool) -> torch.Tensor:
        """BatchNorm1d of each model's own units: the stack's (B, M * width) columns are independent."""
        M, B, C = h.shape
        means, vars_ = self.means[i].view(-1), self.vars[i].view(-1)  # views: F.batch_norm updates them
        flat = F.batch_norm(h.transpose(0, 1).reshape(B, M * C), means, vars_, self.gammas[i].reshape(-1),
                            self.betas[i].reshape(-1), training=training, momentum=self.momentum, eps=1e-5)
        return flat.reshape(B, M, C).transpose(0, 1)

    @torch.no_grad()
    def evaluate(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-model mean cross-entropy and accuracy on shared data, BatchNorm with running statistics."""
        logits = self.forward(X, training=False)  # (M, N, classes)
        M, N, C = logits.shape
        loss = F.cross_entropy(logits.reshape(M * N, C), y.repeat(M), reduction="none").view(M, N).mean(1)
        return loss, (logits.argmax(-1) == y).float().mean(1)


def _train_stack(
    X: torch.Tensor, y: torch.Tensor, depth: int, batchnorm: bool, settings: list[tuple[float, int]],
    num_epochs: int, batch_size: int, width: int, num_classes: int,
    X_test: torch.Tensor | None, y_test: torch.Tensor | None, bar: tqdm,
) -> list[Run]:
    """Train the models of one depth, one per (lr, seed) in `settings`, together; same result as `train_one`."""
    inits = {}
    for seed in dict.fromkeys(s for _, s in settings):
        torch.manual_seed(seed)
        inits[seed] = mlp(X.shape[1], width, depth, num_classes, batchnorm).to(X)
    stack = _Stack([inits[seed] for _, seed in settings])
    lrs = torch.tensor([lr for lr, _ in settings], dtype=X.dtype, device=X.device)  # of the models still training
    alive = torch.arange(len(settings), device=X.device)  # the rows of `settings` still training
    stack.calibrate(X)
    loss, acc = stack.evaluate(X, y)
    losses, accs = [[v] for v in loss.tolist()], acc.tolist()
    test_accs = [math.nan] * len(settings)  # each model's test accuracy where it stopped
    for epoch in range(num_epochs):
        seeds = [settings[row][1] for row in alive.tolist()]
        orders = {s: torch.randperm(len(X), generator=torch.Generator().manual_seed(epoch_seed(s, epoch)))
                  for s in dict.fromkeys(seeds)}
        # one seed: all models see the same batches (N,); several: each model its own row (M, N)
        order = (next(iter(orders.values())) if len(orders) == 1 else torch.stack([orders[s] for s in seeds]))
        order = order.to(X.device)
        for begin in range(0, len(X), batch_size):
            idx = order[..., begin:begin + batch_size]
            if idx.shape[-1] < 2 and batchnorm:
                continue  # BatchNorm cannot train on a batch of one (as in cu.train.fit)
            logits = stack.forward(X[idx], training=True)  # (M, B, classes)
            M, B, C = logits.shape
            targets = y[idx].reshape(-1) if idx.dim() == 2 else y[idx].repeat(M)
            loss = F.cross_entropy(logits.reshape(M * B, C), targets, reduction="none").view(M, B).mean(1)
            # models are independent, so the gradient of sum(lr * loss) is each model's own lr * gradient
            params = stack.params()
            steps = torch.autograd.grad((lrs * loss).sum(), params)
            with torch.no_grad():
                torch._foreach_sub_(params, steps)
        loss, acc = stack.evaluate(X, y)
        for row, value, a in zip(alive.tolist(), loss.tolist(), acc.tolist()):
            losses[row].append(value)
            accs[row] = a
        bar.update(1)
        done = ~torch.isfinite(loss) if epoch < num_epochs - 1 else torch.ones_like(loss, dtype=torch.bool)
        if X_test is not None and done.any():
            for row, a in zip(alive[done].tolist(), stack.evaluate(X_test, y_test)[1][done].tolist()):
                test_accs[row] = a
        if done.all():
            bar.update(num_epochs - 1 - epoch)
            break
        if done.any():
            stack.keep((~done).nonzero().view(-1))
            alive, lrs = alive[~done], lrs[~done]
    return [Run(depth, batchnorm, lr, seed, losses[row], accs[row], test_accs[row])
            for row, (lr, seed) in enumerate(settings)]


def sweep(
    X: torch.Tensor,
    y: torch.Tensor,
    depths: Sequence[int],
    lrs: Sequence[float],
    batchnorm: Sequence[bool] = (False, True),
    seeds: Sequence[int] = (0,),
    num_epochs: int = 3,
    batch_size: int = 32,
    width: int = 64,
    num_classes: int = 10,
    X_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    vectorized: bool = True,
    progress: bool = True,
) -> list[Run]:
    """Train one MLP per (batchnorm, depth, lr, seed) and return one `Run` per model, in that order.

    `vectorized=True` trains all learning rates and seeds of a depth at once and drops a model as soon
    as an epoch ends with a NaN or infinite loss; `vectorized=False` runs `train_one` model after model.
    Used by mlp_depth_sweep.
    """
    settings = [(float(lr), int(seed)) for lr in lrs for seed in seeds]
    groups = [(bn, depth) for bn in batchnorm for depth in depths]
    total = len(groups) * num_epochs * (1 if vectorized else len(settings))
    runs: list[Run] = []
    with tqdm(total=total, desc="sweep", unit="epoch", disable=not progress) as bar:
        for bn, depth in groups:
            bar.set_postfix_str(f"depth {depth}, {'BatchNorm' if bn else 'plain'}")
            if vectorized:
                runs += _train_stack(X, y, depth, bn, settings, num_epochs, batch_size, width, num_classes,
                                     X_test, y_test, bar)
                continue
            for lr, seed in settings:
                run = train_one(X, y, depth, bn, lr, seed, num_epochs, batch_size, width, num_classes, X_test, y_test)
                bar.update(num_epochs)
                runs.append(run)
    return runs


def largest_stable_lr(runs: Sequence[Run], diverged: Diverged = has_diverged) -> dict[tuple[bool, int], float]:
    """For each (batchnorm, depth), the largest learning rate at which no seed diverged (NaN if none)."""
    unstable: dict[tuple[bool, int, float], bool] = {}
    for run in runs:
        key = (run.batchnorm, run.depth, run.lr)
        unstable[key] = unstable.get(key, False) or diverged(run.losses)
    best: dict[tuple[bool, int], float] = {}
    for (bn, depth, lr), bad in unstable.items():
        best.setdefault((bn, depth), math.nan)
        if not bad and not lr <= best[bn, depth]:  # `not <=` so that NaN is replaced
            best[bn, depth] = lr
    return best


def final_loss_grid(
    runs: Sequence[Run], batchnorm: bool, diverged: Diverged = has_diverged
) -> tuple[list[int], list[float], torch.Tensor, torch.Tensor]:
    """Depths, learning rates, the mean final loss over seeds (depth x lr) and where any seed diverged."""
    chosen = [r for r in runs if r.batchnorm == batchnorm]
    depths = sorted({r.depth for r in chosen})
    lrs = sorted({r.lr for r in chosen})
    total, count = torch.zeros(len(depths), len(lrs), dtype=torch.float64), torch.zeros(len(depths), len(lrs))
    bad = torch.zeros(len(depths), len(lrs), dtype=torch.bool)
    for r in chosen:
        i, j = depths.index(r.depth), lrs.index(r.lr)
        total[i, j] += r.final_loss
        count[i, j] += 1
        bad[i, j] |= diverged(r.losses)
    return depths, lrs, total / count, bad
