"""Learning-rate x depth sweeps of ReLU MLPs, trained one model at a time or many at once.

`train_one` is the reference: one `cu.models.mlp`, trained by `cu.train.fit` one epoch at a time.
`sweep(..., vectorized=True)` trains every learning rate and seed of one depth together as a stack of
models (batched matrix products and a hand-written backward pass) and gives the same losses.
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
from .train import fit


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
_EPS = 1e-5  # BatchNorm's epsilon, as in nn.BatchNorm1d


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


def train_model(
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
) -> tuple[nn.Sequential, Run]:
    """`train_one`, also returning the trained model (to look inside it afterwards). Used by mlp_depth_sweep."""
    torch.manual_seed(seed)
    model = mlp(X.shape[1], width, depth, num_classes, batchnorm).to(X)
    calibrate_batchnorm(model, X)

    @torch.no_grad()
    def measure(X_: torch.Tensor, y_: torch.Tensor) -> tuple[float, float]:
        # A closure, not a module function: the package must not hold an answer to the lab's `evaluate`.
        model.eval()
        logits = model(X_)
        model.train()
        return F.cross_entropy(logits, y_).item(), (logits.argmax(dim=1) == y_).float().mean().item()

    loss, train_acc = measure(X, y)
    losses = [loss]
    for epoch in range(num_epochs):
        fit(model, X, y, 1, lr, batch_size=batch_size, seed=epoch_seed(seed, epoch), progress=False)
        loss, train_acc = measure(X, y)
        losses.append(loss)
        if not math.isfinite(loss):
            break
    test_acc = measure(X_test, y_test)[1] if X_test is not None else math.nan
    return model, Run(depth, batchnorm, lr, seed, losses, train_acc, test_acc)


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
    return train_model(X, y, depth, batchnorm, lr, seed, num_epochs, batch_size, width, num_classes, X_test, y_test)[1]


def train_with(
    build: Callable[..., nn.Module],
    evaluate: Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[float, float]],
    train_epoch: Callable[..., float],
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
) -> list[float]:
    """`train_one`'s loss curve, computed with a lab's own pieces: `build(in, width, depth, classes, batchnorm)`
    makes the model, `evaluate(model, X, y)` measures it and `train_epoch(model, optimizer, X, y, batch_size,
    generator)` trains one epoch. Same seeds as `train_one`, so a correct set of pieces gives its losses.
    Used by mlp_depth_sweep.
    """
    torch.manual_seed(seed)
    model = build(X.shape[1], width, depth, num_classes, batchnorm).to(X)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    calibrate_batchnorm(model, X)
    losses = [evaluate(model, X, y)[0]]
    for epoch in range(num_epochs):
        train_epoch(model, optimizer, X, y, batch_size, torch.Generator().manual_seed(epoch_seed(seed, epoch)))
        losses.append(evaluate(model, X, y)[0])
        if not math.isfinite(losses[-1]):
            break  # NaN weights stay NaN
    return losses


class _Stack:
    """M same-shaped MLPs stacked along a leading model axis, trained by a hand-written backward pass.

    Activations are laid out (M, units, batch), so BatchNorm of every model's units is one
    `native_batch_norm` over M * units contiguous rows. Backpropagation is written out instead of
    left to autograd, and each weight's update is fused into the product that computes it: with tiny
    layers the time goes into per-operation overhead, so fewer operations win.
    """

    def __init__(self, models: list[nn.Sequential]):
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        norms = [[m for m in model if isinstance(m, nn.BatchNorm1d)] for model in models]
        stack = lambda tensors: torch.stack([t.detach() for t in tensors])
        self.weights = [stack([ls[i].weight for ls in linears]) for i in range(len(linears[0]))]  # (M, out, in)
        self.biases = [stack([ls[i].bias for ls in linears]).unsqueeze(2) for i in range(len(linears[0]))]  # (M, out, 1)
        flat = lambda tensors: stack(tensors).view(-1)  # BatchNorm's per-unit tensors: M * width, model-major
        self.gammas = [flat([ns[i].weight for ns in norms]) for i in range(len(norms[0]))]
        self.betas = [flat([ns[i].bias for ns in norms]) for i in range(len(norms[0]))]
        self.means = [flat([ns[i].running_mean for ns in norms]) for i in range(len(norms[0]))]
        self.vars = [flat([ns[i].running_var for ns in norms]) for i in range(len(norms[0]))]

    def calibrate(self, X: torch.Tensor) -> None:
        """Running statistics := those of X in training mode (as `calibrate_batchnorm` does per model)."""
        for m in range(len(self.weights[0])):
            self._forward_one(m, X, training=True, momentum=1.0)

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every model whose row is not in `rows` (e.g. the ones that diverged)."""
        M = len(self.weights[0])
        self.weights, self.biases = [t[rows] for t in self.weights], [t[rows] for t in self.biases]
        for name in ("gammas", "betas", "means", "vars"):
            setattr(self, name, [t.view(M, -1)[rows].view(-1) for t in getattr(self, name)])

    def _forward(self, X: torch.Tensor) -> tuple[torch.Tensor, list]:
        """Training-mode logits (M, classes, B) for shared inputs X (B, in) or per-model inputs (M, B, in),
        and what the backward pass needs of each hidden layer: (ReLU output, layer output, BatchNorm's
        saved mean and inverse std)."""
        W, b = self.weights[0], self.biases[0]
        M, width, fan_in = W.shape
        if X.dim() == 2:  # one matrix product for all models: (M * width, in) @ (in, B)
            z = torch.addmm(b.view(M * width, 1), W.view(M * width, fan_in), X.T).view(M, width, -1)
        else:
            z = torch.baddbmm(b, W, X.transpose(1, 2))
        saved = []
        for i in range(1, len(self.weights)):
            r = torch.relu(z)
            h, mean, invstd = r, None, None
            if self.gammas:
                h, mean, invstd = torch.native_batch_norm(r.view(1, M * width, -1), self.gammas[i - 1], self.betas[i - 1],
                                                          self.means[i - 1], self.vars[i - 1], True, 0.1, _EPS)
                h = h.view(M, width, -1)
            saved.append((r, h, mean, invstd))
            z = torch.baddbmm(self.biases[i], self.weights[i], h)
        return z, saved

    def sgd_step(self, X: torch.Tensor, y: torch.Tensor, lrs: torch.Tensor) -> None:
        """One SGD step of every model on its batch: X (B, in) shared or (M, B, in), y (B,) or (M, B).

        Scaling the loss gradient by each model's learning rate makes every later gradient already
        the step to subtract, so the updates are `W -= g @ h.T` fused into one product per layer.
        """
        logits, saved = self._forward(X)
        M, classes, B = logits.shape
        g = torch.softmax(logits, dim=1)  # d(mean cross-entropy)/d logits = (softmax - one-hot) / B
        g.scatter_add_(1, y.expand(M, B).unsqueeze(1), g.new_full((M, 1, B), -1.0))
        g *= (lrs / B).view(M, 1, 1)
        params, steps = [], []  # updated together at the end: one call instead of three per layer
        for i in range(len(self.weights) - 1, 0, -1):
            r, h, mean, invstd = saved[i - 1]
            dh = torch.bmm(self.weights[i].transpose(1, 2), g)
            self.weights[i].baddbmm_(g, h.transpose(1, 2), alpha=-1)
            params.append(self.biases[i])
            steps.append(g.sum(2, keepdim=True))
            if self.gammas:
                dr, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
                    dh.view(1, -1, B), r.view(1, -1, B), self.gammas[i - 1], self.means[i - 1], self.vars[i - 1],
                    mean, invstd, True, _EPS, [True, True, True])
                dh = dr.view(r.shape)
                params += [self.gammas[i - 1], self.betas[i - 1]]
                steps += [dgamma, dbeta]
            g = torch.ops.aten.threshold_backward(dh, r, 0)  # ReLU passes the gradient where it was positive
        W = self.weights[0]
        if X.dim() == 2:
            W.view(len(g) * g.shape[1], -1).addmm_(g.view(-1, B), X, alpha=-1)
        else:
            W.baddbmm_(g, X, alpha=-1)
        params.append(self.biases[0])
        steps.append(g.sum(2, keepdim=True))
        torch._foreach_sub_(params, steps)

    def evaluate(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-model mean cross-entropy and accuracy on shared data, BatchNorm with running statistics."""
        logits = [self._forward_one(m, X, training=False) for m in range(len(self.weights[0]))]
        loss = torch.stack([F.cross_entropy(out, y) for out in logits])
        return loss, torch.stack([(out.argmax(1) == y).float().mean() for out in logits])

    def _forward_one(self, m: int, X: torch.Tensor, training: bool, momentum: float = 0.1) -> torch.Tensor:
        """Logits (N, classes) of model m alone, as nn.Sequential computes them.

        Passes over a whole dataset go model by model: a stack's (M, units, N) activations overflow
        the cache, and one model's (N, units) ones are the layout BatchNorm is fastest on.
        """
        h = F.linear(X, self.weights[0][m], self.biases[0][m, :, 0])
        for i in range(1, len(self.weights)):
            h = torch.relu(h)
            if self.gammas:
                mean, var, gamma, beta = (t.view(len(self.weights[0]), -1)[m] for t in
                                          (self.means[i - 1], self.vars[i - 1], self.gammas[i - 1], self.betas[i - 1]))
                h = F.batch_norm(h, mean, var, gamma, beta, training, momentum, _EPS)
            h = F.linear(h, self.weights[i][m], self.biases[i][m, :, 0])
        return h


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
            stack.sgd_step(X[idx], y[idx], lrs)
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

    `vectorized=True` trains all learning rates and seeds of a depth at once (see `_Stack`) and drops a
    model as soon as an epoch ends with a NaN or infinite loss; `vectorized=False` runs `train_one` model after model.
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


def largest_stable_lr(runs: Sequence[Run], diverged: Diverged) -> dict[tuple[bool, int], float]:
    """For each (batchnorm, depth), the largest learning rate at which no seed diverged by the lab's own
    definition `diverged(losses)` (NaN if every rate diverged)."""
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
    runs: Sequence[Run], batchnorm: bool, diverged: Diverged
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
