"""Deep BatchNorm MLPs changed in one respect each, trained as a stack: residual wiring or layer-wise steps.

Every network starts from the weights `cu.models.mlp(..., batchnorm=True)` draws for its seed (the sweep's
initialization): `depth` hidden-width Linear layers and a head. Only the wiring or the optimizer differs:

- `"mlp"`: the sweep's network, every hidden layer Linear -> ReLU -> BatchNorm1d;
- `"branch"`: an input Linear, then `depth - 1` residual blocks h <- h + W relu(BN(h)) + b, then the head
  (BatchNorm in the branch; residual_variance's placement);
- `"stream"`: the same blocks with the stream itself normalized first, h <- BN(h); h <- h + W relu(h) + b.

`optimizer="sgd"` takes plain SGD steps; `"lars"` gives every layer's parameter group (a Linear's W and b, a
BatchNorm's weight and bias) the step lr * ||theta_l|| / ||grad theta_l|| along its gradient, so that all layers
move by the same relative amount. Used by mlp_depth_sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .models import mlp
from .sweep import epoch_seed

Variant = Literal["mlp", "branch", "stream"]
Optimizer = Literal["sgd", "lars"]
_EPS = 1e-5  # BatchNorm's epsilon, as in nn.BatchNorm1d
_MOMENTUM = 0.1  # BatchNorm's running-statistics momentum, as in nn.BatchNorm1d


@dataclass
class VariantRun:
    """One trained network: its setting, its loss curve and how it classifies in the two BatchNorm modes."""

    variant: str
    optimizer: str
    depth: int
    lr: float
    seed: int
    losses: list[float]  # training loss in eval mode at initialization and after each epoch trained
    train_acc: float  # training accuracy in eval mode (running statistics)
    batch_acc: float  # training accuracy in training mode (statistics of each training batch's size)
    test_acc: float  # test accuracy in eval mode
    growth: list[float]  # ||(W, b)|| of every Linear after training / at initialization, input layer first

    @property
    def start_loss(self) -> float:
        return self.losses[0]

    @property
    def final_loss(self) -> float:
        return self.losses[-1]


class VariantStack:
    """M networks of one variant and depth stacked along a model axis (activations (M, units, batch)).

    The hidden Linear layers' weights are one tensor (depth - 1, M, width, width), so that the layer-wise step of
    every layer of every network is a few operations. Gradients come from autograd.
    """

    def __init__(self, variant: Variant, depth: int, seeds: Sequence[int], in_features: int, width: int = 64,
                 num_classes: int = 10, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        if variant not in ("mlp", "branch", "stream"):
            raise ValueError(f"variant must be 'mlp', 'branch' or 'stream', not {variant!r}")
        self.variant, self.residual = variant, variant != "mlp"
        if depth < 1 or (self.residual and depth < 2):
            raise ValueError(f"a {variant!r} network needs at least {2 if self.residual else 1} hidden layers")
        if len(seeds) == 0:
            raise ValueError("a stack needs at least one network (one seed)")
        self.depth, self.M = depth, len(seeds)
        state = torch.get_rng_state()
        try:
            inits = []
            for seed in seeds:
                torch.manual_seed(int(seed))
                inits.append([m for m in mlp(in_features, width, depth, num_classes, batchnorm=True)
                              if isinstance(m, torch.nn.Linear)])
        finally:
            torch.set_rng_state(state)
        to = dict(device=device, dtype=dtype)
        weight = lambda i: torch.stack([ls[i].weight.detach() for ls in inits]).to(**to)  # (M, out, in)
        bias = lambda i: torch.stack([ls[i].bias.detach() for ls in inits]).unsqueeze(2).to(**to)  # (M, out, 1)
        hidden = range(1, depth)
        self.W_in, self.b_in = weight(0).requires_grad_(), bias(0).requires_grad_()
        layers = lambda make, shape: torch.stack([make(i) for i in hidden]) if depth > 1 else torch.empty(shape, **to)
        self.W = layers(weight, (0, self.M, width, width)).requires_grad_()  # (depth - 1, M, width, width)
        self.b = layers(bias, (0, self.M, width, 1)).requires_grad_()  # (depth - 1, M, width, 1)
        self.W_head, self.b_head = weight(depth).requires_grad_(), bias(depth).requires_grad_()
        num_norms = depth - 1 if self.residual else depth
        self.gamma = torch.ones(num_norms, self.M, width, **to).requires_grad_()
        self.beta = torch.zeros(num_norms, self.M, width, **to).requires_grad_()
        self.running_mean = torch.zeros(num_norms, self.M, width, **to)
        self.running_var = torch.ones(num_norms, self.M, width, **to)

    def params(self) -> list[torch.Tensor]:
        """The trainable tensors, in the order `step` pairs them into layer groups."""
        return [self.W_in, self.b_in, self.W, self.b, self.W_head, self.b_head, self.gamma, self.beta]

    def _norm(self, j: int, h: torch.Tensor, training: bool, update: bool, momentum: float) -> torch.Tensor:
        M, units, B = h.shape
        stats = (self.running_mean[j].view(-1), self.running_var[j].view(-1)) if update or not training else (None, None)
        return F.batch_norm(h.reshape(1, M * units, B), *stats, self.gamma[j].reshape(-1), self.beta[j].reshape(-1),
                            training, momentum, _EPS).view(M, units, B)

    def forward(self, X: torch.Tensor, training: bool, update: bool = True, momentum: float = _MOMENTUM) -> torch.Tensor:
        """Logits (M, classes, B) for X shared (B, in) or per model (M, B, in). In training mode BatchNorm uses
        each batch's statistics and, with `update`, moves the running statistics; otherwise it uses them."""
        X_t = X.transpose(-1, -2).expand(self.M, -1, -1) if X.dim() == 2 else X.transpose(1, 2)
        h = torch.baddbmm(self.b_in, self.W_in, X_t)
        for j, (W, b) in enumerate(zip(self.W.unbind(0), self.b.unbind(0))):
            if self.residual:  # branch: h + W relu(BN(h)) + b; stream: BN(h) + W relu(BN(h)) + b
                n = self._norm(j, h, training, update, momentum)
                h = (n if self.variant == "stream" else h) + torch.baddbmm(b, W, torch.relu(n))
            else:
                h = torch.baddbmm(b, W, self._norm(j, torch.relu(h), training, update, momentum))
        if not self.residual:
            h = self._norm(self.depth - 1, torch.relu(h), training, update, momentum)
        return torch.baddbmm(self.b_head, self.W_head, h)

    @torch.no_grad()
    def calibrate(self, X: torch.Tensor) -> None:
        """Running statistics := those of X passed through each network in training mode (as the sweep does)."""
        self.forward(X, training=True, momentum=1.0)

    def step(self, X: torch.Tensor, y: torch.Tensor, lrs: torch.Tensor, optimizer: Optimizer) -> None:
        """One step of every network on its batch (X (B, in) or (M, B, in), y (B,) or (M, B)) with its own lr."""
        logits = self.forward(X, training=True)
        loss = F.cross_entropy(logits, y.expand(self.M, -1), reduction="none").mean(1).sum()
        params = self.params()
        grads = torch.autograd.grad(loss, params, materialize_grads=True)  # a depth-1 network has no hidden W
        # groups, one per layer and network: (input W, b), (hidden W, b), (head W, b), (BatchNorm weight, bias)
        pairs = [(0, 1, 1), (2, 3, 2), (4, 5, 1), (6, 7, 2)]  # the two tensors of a group and how many axes lead
        with torch.no_grad():
            for i, k, lead in pairs:
                scale = lrs.view(*[1] * (lead - 1), -1)  # (M,) or (1, M)
                if optimizer == "lars":
                    norm = lambda a, c: torch.hypot(*(torch.linalg.vector_norm(t, dim=tuple(range(lead, t.dim())))
                                                      for t in (a, c)))
                    theta, grad = norm(params[i], params[k]), norm(grads[i], grads[k])
                    scale = torch.where(grad > 0, scale * theta / grad, torch.zeros_like(grad))
                for p, g in ((params[i], grads[i]), (params[k], grads[k])):
                    p.addcmul_(scale.view(*scale.shape, *[1] * (p.dim() - lead)), g, value=-1)

    @torch.no_grad()
    def evaluate(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-network mean cross-entropy and accuracy on (X, y) in eval mode (running statistics)."""
        logits = self.forward(X, training=False)
        loss = F.cross_entropy(logits, y.expand(self.M, -1), reduction="none").mean(1)
        return loss, (logits.argmax(1) == y).float().mean(1)

    @torch.no_grad()
    def batch_accuracy(self, X: torch.Tensor, y: torch.Tensor, batch_size: int = 32, seed: int = 0) -> torch.Tensor:
        """Per-network accuracy in training mode on shuffled batches of `batch_size`, running statistics untouched
        (as `cu.train.batch_mode_loss` measures one network; a trailing batch of one is left out)."""
        order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed)).to(X.device)
        correct, count = torch.zeros(self.M, device=X.device), 0
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                continue
            correct += (self.forward(X[idx], training=True, update=False).argmax(1) == y[idx]).sum(1)
            count += len(idx)
        return correct / count

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the networks in `rows` (e.g. drop the ones whose loss became NaN)."""
        pick = lambda t, axis: t.detach().index_select(axis, rows).requires_grad_(t.requires_grad)
        self.W_in, self.b_in, self.W_head, self.b_head = (pick(t, 0) for t in (self.W_in, self.b_in, self.W_head,
                                                                               self.b_head))
        self.W, self.b, self.gamma, self.beta = (pick(t, 1) for t in (self.W, self.b, self.gamma, self.beta))
        self.running_mean, self.running_var = pick(self.running_mean, 1), pick(self.running_var, 1)
        self.M = len(rows)

    def linear_norms(self) -> torch.Tensor:
        """||(W, b)|| of every Linear of every network, (M, depth + 1), input layer first, in float64."""
        sq = lambda W, b, lead: W.detach().double().pow(2).flatten(lead).sum(lead) + b.detach().double().pow(2).flatten(lead).sum(lead)
        hidden = sq(self.W, self.b, 2).T  # (M, depth - 1)
        return torch.cat([sq(self.W_in, self.b_in, 1)[:, None], hidden, sq(self.W_head, self.b_head, 1)[:, None]], 1).sqrt()


def train_variant(
    X: torch.Tensor, y: torch.Tensor, variant: Variant, depth: int, lrs: Sequence[float],
    seeds: Sequence[int] = (0, 1), optimizer: Optimizer = "sgd", num_epochs: int = 3, batch_size: int = 32,
    width: int = 64, num_classes: int = 10, X_test: torch.Tensor | None = None, y_test: torch.Tensor | None = None,
    progress: bool = True,
) -> list[VariantRun]:
    """Train one network per (lr, seed) of one variant and depth together, with the sweep's seeds and batch orders.

    Losses are eval-mode training losses, the first after calibrating BatchNorm at initialization; a network is
    dropped after the first epoch whose loss is NaN or infinite. Returns one `VariantRun` per (lr, seed), lr-major.
    """
    if optimizer not in ("sgd", "lars"):
        raise ValueError(f"optimizer must be 'sgd' or 'lars', not {optimizer!r}")
    if len(X) < 2 or batch_size < 2:
        raise ValueError("BatchNorm needs batches of at least 2 examples")
    settings = [(float(lr), int(seed)) for lr in lrs for seed in seeds]
    stack = VariantStack(variant, depth, [s for _, s in settings], X.shape[1], width, num_classes, X.device, X.dtype)
    initial = stack.linear_norms()
    rates = torch.tensor([lr for lr, _ in settings], dtype=X.dtype, device=X.device)
    alive = torch.arange(len(settings))
    stack.calibrate(X)
    losses = [[v] for v in stack.evaluate(X, y)[0].tolist()]
    final: dict[int, tuple[float, float, float, list[float]]] = {}  # row -> train acc, batch acc, test acc, growth

    def finish(rows: torch.Tensor) -> None:
        _, acc = stack.evaluate(X, y)
        batch_acc = stack.batch_accuracy(X, y, batch_size)
        test_acc = stack.evaluate(X_test, y_test)[1] if X_test is not None else torch.full_like(acc, math.nan)
        growth = stack.linear_norms() / initial[alive]
        for i, row in enumerate(alive.tolist()):
            if rows[i]:
                final[row] = (acc[i].item(), batch_acc[i].item(), test_acc[i].item(), growth[i].tolist())

    with tqdm(total=num_epochs, desc=f"{variant}, {optimizer}, depth {depth}", unit="epoch", disable=not progress,
              leave=False) as bar:
        for epoch in range(num_epochs):
            seeds_alive = [settings[row][1] for row in alive.tolist()]
            orders = {s: torch.randperm(len(X), generator=torch.Generator().manual_seed(epoch_seed(s, epoch)))
                      for s in dict.fromkeys(seeds_alive)}
            order = torch.stack([orders[s] for s in seeds_alive]).to(X.device)  # (M, N)
            for begin in range(0, len(X), batch_size):
                idx = order[:, begin:begin + batch_size]
                if idx.shape[1] < 2:
                    continue  # BatchNorm cannot train on a batch of one (as in cu.train.fit)
                stack.step(X[idx], y[idx], rates, optimizer)
            loss = stack.evaluate(X, y)[0]
            for row, value in zip(alive.tolist(), loss.tolist()):
                losses[row].append(value)
            bar.update(1)
            done = ~torch.isfinite(loss) if epoch < num_epochs - 1 else torch.ones_like(loss, dtype=torch.bool)
            if done.any():
                finish(done)
            if done.all():
                break
            if done.any():
                stack.keep((~done).nonzero().view(-1))
                alive, rates = alive[~done.cpu()], rates[~done]
    return [VariantRun(variant, optimizer, depth, lr, seed, losses[row], *final[row])
            for row, (lr, seed) in enumerate(settings)]
