"""Small CNNs with BatchNorm, GroupNorm or LayerNorm, trained one at a time or many at once, over batch sizes.

`small_cnn` is the reference network and `train_one` its reference training loop. `StackedCNNs` holds M
such networks as one: each layer's weights are concatenated along the output channels and applied as one
grouped convolution (`groups=M`), so model m's channels only ever see model m's input channels, and each
normalization of all models of one kind is one call. `batch_size_sweep(..., vectorized=True)` trains all
norms and seeds of a batch size together this way and gives the results of the per-model loop.
"""

from __future__ import annotations

import math
from copy import deepcopy
from dataclasses import dataclass
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .sweep import epoch_seed

NORMS = ("batch", "group", "layer")  # BatchNorm2d, GroupNorm(GROUPS, C), GroupNorm(1, C) (LayerNorm over C, H, W)
WIDTHS = (8, 16)  # output channels of the 3x3 convolutions
STRIDES = (2, 2)  # 28x28 -> 14x14 -> 7x7
GROUPS = 4  # GroupNorm's groups
EPS = 1e-5  # every normalization's epsilon, as in torch.nn
MOMENTUM = 0.1  # BatchNorm's running-statistics momentum, as in torch.nn
EVAL_CHUNK = 500  # images per forward pass when evaluating a whole dataset


def norm_layer(norm: str, channels: int, groups: int = GROUPS) -> nn.Module:
    """The normalization called `norm` ("batch", "group" or "layer") for `channels` feature maps.

    "layer" is GroupNorm with one group: every example normalized over all of its channels and positions,
    with one scale and shift per channel (the LayerNorm of Wu and He's GroupNorm paper).
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels, eps=EPS, momentum=MOMENTUM)
    if norm == "group":
        return nn.GroupNorm(groups, channels, eps=EPS)
    if norm == "layer":
        return nn.GroupNorm(1, channels, eps=EPS)
    raise ValueError(f"unknown normalization {norm!r}; choose one of {NORMS}")


def small_cnn(norm: str, widths: Sequence[int] = WIDTHS, strides: Sequence[int] = STRIDES, groups: int = GROUPS,
              num_classes: int = 10, in_channels: int = 1, image_size: int = 28, kernel_size: int = 3) -> nn.Sequential:
    """Blocks Conv2d(kernel_size, padding kernel_size // 2, no bias) -> norm -> ReLU, then a Linear head on the
    flattened last feature maps.

    The convolutions are He-initialized; they have no bias because every normalization after them
    removes it (BatchNorm exactly, per channel). With `kernel_size=1` and `image_size=1` the network is an
    MLP on `in_channels` features whose BatchNorm2d is BatchNorm1d: one value per example and feature.
    Used by norm_layers.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd (a centred kernel keeps the size), not {kernel_size}")
    layers: list[nn.Module] = []
    fan_in, size = in_channels, image_size
    for width, stride in zip(widths, strides):
        conv = nn.Conv2d(fan_in, width, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        layers += [conv, norm_layer(norm, width, groups), nn.ReLU()]
        fan_in, size = width, (size - 1) // stride + 1
    layers += [nn.Flatten(), nn.Linear(fan_in * size * size, num_classes)]
    return nn.Sequential(*layers)


def norm_kind(module: nn.Module) -> tuple[str, int]:
    """("batch", 0), ("group", groups) or ("layer", 1) for a normalization module of `norm_layer`."""
    if isinstance(module, nn.BatchNorm2d):
        return "batch", 0
    if isinstance(module, nn.GroupNorm):
        return ("layer", 1) if module.num_groups == 1 else ("group", module.num_groups)
    raise ValueError(f"not a normalization of small_cnn: {module}")


@dataclass
class CNNRun:
    """One trained network of a batch-size sweep: its setting and what training did to it."""

    norm: str
    batch_size: int
    seed: int
    lr: float
    losses: list[float]  # mean training loss (training mode) of each epoch
    train_acc: float  # on the training set, evaluation mode
    test_acc: float  # on the test set, evaluation mode (BatchNorm: running statistics)
    test_acc_batch: float  # on the test set, normalized with the statistics of test batches of batch_size
    test_acc_population: float  # on the test set, BatchNorm with statistics re-estimated on the whole training set

    @property
    def mode_gap(self) -> float:
        """Test accuracy with batch statistics minus test accuracy in evaluation mode (0 unless BatchNorm)."""
        return self.test_acc_batch - self.test_acc


def scaled_lr(lr: float, batch_size: int, reference_batch_size: int) -> float:
    """The linear scaling rule: `lr` at `reference_batch_size`, proportionally smaller or larger elsewhere."""
    return lr * batch_size / reference_batch_size


def batches(num_examples: int, batch_size: int, seed: int, epoch: int) -> torch.Tensor:
    """Index rows (num_batches, batch_size) of one epoch: a seeded shuffle cut into full batches (the rest dropped)."""
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))
    num_batches = num_examples // batch_size
    return order[:num_batches * batch_size].view(num_batches, batch_size)


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> float:
    """Accuracy of `model` on (X, y): in evaluation mode, or, given `batch_size`, with every normalization
    using the statistics of consecutive batches of that size (BatchNorm in training mode, running statistics
    untouched). The model's mode is restored."""
    was_training = model.training
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    model.train(batch_size is not None)
    step = batch_size or EVAL_CHUNK
    correct = sum((model(X[i:i + step]).argmax(1) == y[i:i + step]).sum().item() for i in range(0, len(X), step))
    for m, (mean, var, count) in zip(norms, saved):
        m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(count)
    model.train(was_training)
    return correct / len(X)


@torch.no_grad()
def population_accuracy(model: nn.Module, X_stats: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of `model` in evaluation mode on (X, y) after setting every BatchNorm's running statistics to those
    of all of `X_stats` (one pass in training mode with momentum 1: each layer's statistics over the whole set,
    given the layers below normalized the same way). The running estimates of training are left out of it; the
    model is untouched."""
    copy = deepcopy(model)
    for m in copy.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 1.0
    copy.train()(X_stats)
    return accuracy(copy, X, y)


def train_one(X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor, y_test: torch.Tensor, norm: str,
              batch_size: int, seed: int, lr: float, num_epochs: int, weight_decay: float = 0.0,
              **cnn_args) -> CNNRun:
    """Train one `small_cnn` with plain SGD on the batches of `batches`; the reference of `StackedCNNs`."""
    torch.manual_seed(seed)
    model = small_cnn(norm, **cnn_args).to(X)
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for epoch in range(num_epochs):
        model.train()
        total = 0.0
        rows = batches(len(X), batch_size, seed, epoch).to(X.device)
        for idx in rows:
            opt.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item()
        losses.append(total / len(rows))
    return CNNRun(norm, batch_size, seed, lr, losses, accuracy(model, X, y), accuracy(model, X_test, y_test),
                  accuracy(model, X_test, y_test, batch_size), population_accuracy(model, X, X_test, y_test))


class StackedCNNs:
    """M `small_cnn`s of the same widths trained as one: grouped convolutions over the model axis.

    Inputs are laid out (batch, M * in_channels, H, W) and model m owns channels [m * C, (m + 1) * C) of every
    layer, so one `F.conv2d(..., groups=M)` computes a layer of all M models, BatchNorm of all BatchNorm
    models is one `F.batch_norm` (each channel normalized over its own model's batch and positions), and
    GroupNorm/LayerNorm of all models of that kind is one `F.group_norm` with M times the groups. Every
    model keeps its own parameters, statistics and batches.
    """

    def __init__(self, models: Sequence[nn.Sequential]):
        convs = [[m for m in model if isinstance(m, nn.Conv2d)] for model in models]
        norms = [[m for m in model if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))] for model in models]
        heads = [[m for m in model if isinstance(m, nn.Linear)][-1] for model in models]
        self.M = len(models)
        self.strides = [c.stride for c in convs[0]]
        self.paddings = [c.padding for c in convs[0]]
        self.in_channels = convs[0][0].in_channels
        self.widths = [c.out_channels for c in convs[0]]
        kinds = [norm_kind(ns[0]) for ns in norms]
        self.kinds = kinds
        # runs of consecutive models with the same normalization: (kind, groups, first model, end model)
        self.segments: list[tuple[str, int, int, int]] = []
        for m, (kind, groups) in enumerate(kinds):
            if self.segments and self.segments[-1][:2] == (kind, groups):
                self.segments[-1] = (kind, groups, self.segments[-1][2], m + 1)
            else:
                self.segments.append((kind, groups, m, m + 1))
        cat = lambda tensors: torch.cat([t.detach().clone() for t in tensors])
        L = len(self.widths)
        self.weights = [cat([cs[i].weight for cs in convs]).requires_grad_() for i in range(L)]  # (M*C, C_in, 3, 3)
        self.gammas = [cat([ns[i].weight for ns in norms]).requires_grad_() for i in range(L)]  # (M*C,)
        self.betas = [cat([ns[i].bias for ns in norms]).requires_grad_() for i in range(L)]
        stat = lambda name, i: cat([getattr(ns[i], name) if isinstance(ns[i], nn.BatchNorm2d)
                                    else torch.zeros_like(ns[i].weight) for ns in norms])
        self.running_means = [stat("running_mean", i) for i in range(L)]
        self.running_vars = [stat("running_var", i) for i in range(L)]
        self.head_weight = torch.stack([h.weight.detach().clone() for h in heads]).requires_grad_()  # (M, K, C)
        self.head_bias = torch.stack([h.bias.detach().clone() for h in heads]).requires_grad_()  # (M, K)

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.gammas, *self.betas, self.head_weight, self.head_bias]

    def _normalize(self, i: int, h: torch.Tensor, mode: str, momentum: float = MOMENTUM) -> torch.Tensor:
        C = self.widths[i]
        parts = []
        for kind, groups, a, b in self.segments:
            rows = slice(a * C, b * C)
            part = h[:, rows] if len(self.segments) > 1 else h
            gamma, beta = self.gammas[i][rows], self.betas[i][rows]
            if kind == "batch" and mode == "eval":
                part = F.batch_norm(part, self.running_means[i][rows], self.running_vars[i][rows], gamma, beta,
                                    False, 0.0, EPS)
            elif kind == "batch" and mode == "train":  # updates this slice of the running statistics in place
                part = F.batch_norm(part, self.running_means[i][rows], self.running_vars[i][rows], gamma, beta,
                                    True, momentum, EPS)
            elif kind == "batch":  # "batch": the batch's statistics, running statistics untouched
                part = F.batch_norm(part, None, None, gamma, beta, True, 0.0, EPS)
            else:
                part = F.group_norm(part, (b - a) * groups, gamma, beta, EPS)
            parts.append(part)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def forward(self, X: torch.Tensor, mode: str = "eval", momentum: float = MOMENTUM) -> torch.Tensor:
        """Logits (M, batch, classes) for per-model inputs X (batch, M * in_channels, H, W) or shared ones
        (batch, in_channels, H, W).

        `mode` is "train" (batch statistics, running statistics updated with `momentum`), "batch" (batch
        statistics only) or "eval" (BatchNorm with its running statistics).
        """
        h = X.repeat(1, self.M, 1, 1) if X.shape[1] == self.in_channels and self.M > 1 else X
        for i, (weight, stride, padding) in enumerate(zip(self.weights, self.strides, self.paddings)):
            if h.shape[-2:] == weight.shape[-2:] == (1, 1):  # a 1x1 kernel on a 1x1 map: M matrix products, faster
                B, w = len(h), weight.view(self.M, -1, weight.shape[1])  # w: (M, C_out, C_in)
                h = torch.bmm(h.view(B, self.M, -1).transpose(0, 1), w.transpose(1, 2))  # (M, B, C_out)
                h = h.transpose(0, 1).reshape(B, -1, 1, 1)
            else:
                h = F.conv2d(h, weight, stride=stride, padding=padding, groups=self.M)
            h = F.relu(self._normalize(i, h, mode, momentum))
        h = h.reshape(len(h), self.M, -1)  # (B, M, C * H * W): each model's feature maps, flattened
        return torch.einsum("bmc,mkc->mbk", h, self.head_weight) + self.head_bias.unsqueeze(1)

    def sgd_step(self, X: torch.Tensor, y: torch.Tensor, lr: float, weight_decay: float = 0.0) -> torch.Tensor:
        """One plain SGD step of every model on its own batch X (B, M * in_channels, H, W), y (M, B); returns each
        model's loss."""
        logits = self.forward(X, "train")
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(self.M, -1).mean(1)
        params = self.parameters()
        grads = torch.autograd.grad(losses.sum(), params)  # model m's parameters get model m's gradient only
        with torch.no_grad():
            if weight_decay:
                torch._foreach_add_(grads, params, alpha=weight_decay)
            torch._foreach_add_(params, grads, alpha=-lr)
        return losses.detach()

    @torch.no_grad()
    def accuracy(self, X: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Each model's accuracy (M,) on shared data: evaluation mode, or batch statistics of `batch_size` images."""
        step = batch_size or EVAL_CHUNK
        correct = torch.zeros(self.M, dtype=torch.long)
        for i in range(0, len(X), step):
            logits = self.forward(X[i:i + step], "batch" if batch_size else "eval")
            correct += (logits.argmax(2) == y[i:i + step]).sum(1).cpu()
        return correct.double() / len(X)

    @torch.no_grad()
    def population_accuracy(self, X_stats: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each model's accuracy (M,) in evaluation mode with BatchNorm's statistics re-estimated on all of `X_stats`
        (the stack's `population_accuracy`); the stack's running statistics are left as they were."""
        saved = [t.clone() for t in (*self.running_means, *self.running_vars)]
        self.forward(X_stats, "train", momentum=1.0)
        acc = self.accuracy(X, y)
        for t, old in zip((*self.running_means, *self.running_vars), saved):
            t.copy_(old)
        return acc


def _train_stack(X, y, X_test, y_test, settings: list[tuple[str, int]], batch_size: int, lr: float,
                 num_epochs: int, bar: tqdm, cnn_args: dict) -> list[CNNRun]:
    models = []
    for norm, seed in settings:
        torch.manual_seed(seed)
        models.append(small_cnn(norm, **cnn_args).to(X))
    stack = StackedCNNs(models)
    seeds = [seed for _, seed in settings]
    losses = [[] for _ in settings]
    for epoch in range(num_epochs):
        orders = {s: batches(len(X), batch_size, s, epoch) for s in dict.fromkeys(seeds)}
        rows = torch.stack([orders[s] for s in seeds], dim=1).to(X.device)  # (num_batches, M, B)
        total = torch.zeros(len(settings), dtype=torch.float64)
        for idx in rows:
            images = X[idx].transpose(0, 1).flatten(1, 2)  # (M, B, C_in, H, W) -> (B, M * C_in, H, W)
            total += stack.sgd_step(images, y[idx], lr).double().cpu()
            bar.update(1)
        for row, value in enumerate((total / len(rows)).tolist()):
            losses[row].append(value)
    train_acc, test_acc = stack.accuracy(X, y), stack.accuracy(X_test, y_test)
    test_acc_batch = stack.accuracy(X_test, y_test, batch_size)
    test_acc_population = stack.population_accuracy(X, X_test, y_test)
    return [CNNRun(norm, batch_size, seed, lr, losses[m], train_acc[m].item(), test_acc[m].item(),
                   test_acc_batch[m].item(), test_acc_population[m].item()) for m, (norm, seed) in enumerate(settings)]


def batch_size_sweep(
    X: torch.Tensor,
    y: torch.Tensor,
    X_test: torch.Tensor,
    y_test: torch.Tensor,
    batch_sizes: Sequence[int],
    norms: Sequence[str] = NORMS,
    seeds: Sequence[int] = (0, 1, 2),
    num_epochs: int = 2,
    lr: float = 0.1,
    reference_batch_size: int = 32,
    vectorized: bool = True,
    progress: bool = True,
    **cnn_args,
) -> list[CNNRun]:
    """Train one `small_cnn` per (batch size, norm, seed) with plain SGD; one `CNNRun` each, in that order.

    The learning rate follows the linear scaling rule (`lr` at `reference_batch_size`), so every batch
    size takes the same number of epochs with the same ratio of learning rate to batch size. A seed fixes
    the initialization (the same for every norm) and the batch order. `vectorized=True` trains every norm
    and seed of a batch size at once (`StackedCNNs`): at small batches one step of one tiny network is
    all overhead, and M networks share it; `vectorized=False` runs `train_one` model after model.
    Used by norm_layers.
    """
    settings = [(norm, int(seed)) for norm in norms for seed in seeds]
    total = sum(len(X) // b for b in batch_sizes) * num_epochs * (1 if vectorized else len(settings))
    runs: list[CNNRun] = []
    with tqdm(total=total, desc="batch-size sweep", unit="step", disable=not progress) as bar:
        for batch_size in batch_sizes:
            bar.set_postfix_str(f"batch size {batch_size}")
            step = scaled_lr(lr, batch_size, reference_batch_size)
            if vectorized:
                runs += _train_stack(X, y, X_test, y_test, settings, batch_size, step, num_epochs, bar, cnn_args)
                continue
            for norm, seed in settings:
                runs.append(train_one(X, y, X_test, y_test, norm, batch_size, seed, step, num_epochs, **cnn_args))
                bar.update(len(X) // batch_size * num_epochs)
    return runs


def summary(runs: Sequence[CNNRun], field: str) -> dict[tuple[str, int], tuple[float, float, float, float]]:
    """For each (norm, batch size): mean, standard deviation (over seeds), smallest and largest of `field`."""
    groups: dict[tuple[str, int], list[float]] = {}
    for run in runs:
        groups.setdefault((run.norm, run.batch_size), []).append(float(getattr(run, field)))
    out = {}
    for key, values in groups.items():
        v = np.asarray(values)
        out[key] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, float(v.min()), float(v.max()))
    return out


NORM_LABELS = {"batch": "BatchNorm2d", "group": f"GroupNorm ({GROUPS} groups)", "layer": "LayerNorm (GroupNorm, 1 group)"}


def plot_batch_size_sweep(runs: Sequence[CNNRun]) -> tuple[plt.Figure, np.ndarray]:
    """Left: test accuracy against batch size, one line per norm (mean over seeds, every seed as a dot), and
    BatchNorm with batch statistics dashed. Right: BatchNorm's gap between its two modes, per seed."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    sizes = sorted({r.batch_size for r in runs})
    for i, norm in enumerate(dict.fromkeys(r.norm for r in runs)):
        for field, style, label in [("test_acc", "-", NORM_LABELS.get(norm, norm)),
                                    ("test_acc_batch", "--", f"{NORM_LABELS.get(norm, norm)}, batch statistics")]:
            if field == "test_acc_batch" and norm != "batch":
                continue
            mine = [r for r in runs if r.norm == norm]
            means = [np.mean([getattr(r, field) for r in mine if r.batch_size == b]) for b in sizes]
            axes[0].plot(sizes, means, style, color=f"C{i}", marker="o", label=label)
            axes[0].scatter([r.batch_size for r in mine], [getattr(r, field) for r in mine], color=f"C{i}", s=10,
                            alpha=0.5)
    bn = [r for r in runs if r.norm == "batch"]
    if bn:
        axes[1].axhline(0, color="grey", lw=0.8)
        axes[1].plot(sizes, [np.mean([r.mode_gap for r in bn if r.batch_size == b]) for b in sizes], "-o", color="C0",
                     label="mean over seeds")
        axes[1].scatter([r.batch_size for r in bn], [r.mode_gap for r in bn], color="C0", s=12, alpha=0.5,
                        label="each seed")
        axes[1].legend()
    axes[0].set(xscale="log", xlabel="batch size", ylabel="test accuracy", title="test accuracy after training")
    axes[1].set(xscale="log", xlabel="batch size", ylabel="accuracy with batch statistics - eval mode",
                title="BatchNorm: batch statistics against running estimates")
    for ax in axes:
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig, axes
