"""Small convolutional networks pretrained on one task and fine-tuned on another with small batches.

`StackedConvNet` holds M networks (one per seed) of one architecture as a single module: its convolutions are
grouped, one group per network, so every layer of every network is one call. Inputs are (B, M, 28, 28), one
grayscale image per network in each row (each network may see its own images), and logits come out (B, M, K).
Each network normalizes with BatchNorm (`norm="bn"`) or with GroupNorm after weight-standardized convolutions
(`norm="gn_ws"`, Qiao et al. 2019); the channels of network m are the m-th block of every layer's channels, so
BatchNorm2d and GroupNorm over all M * C channels are M independent layers. Used by norm_in_practice.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

Norm = Literal["bn", "gn_ws"]
Statistics = Literal["batch", "frozen"]
WS_EPS = 1e-5  # added to each output channel's weight variance in weight standardization


def standardize_weight(weight: torch.Tensor, eps: float = WS_EPS) -> torch.Tensor:
    """Each output channel's weight (first axis) shifted to mean 0 and scaled to variance 1 over its other axes."""
    flat = weight.reshape(len(weight), -1)
    mean = flat.mean(dim=1, keepdim=True)
    var = flat.var(dim=1, keepdim=True, correction=0)
    return ((flat - mean) / torch.sqrt(var + eps)).reshape(weight.shape)


class _Conv(nn.Conv2d):
    """A grouped convolution whose weight is standardized per output channel when `standardize` is set."""

    def __init__(self, *args, standardize: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.standardize = standardize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = standardize_weight(self.weight) if self.standardize else self.weight
        return self._conv_forward(x, weight, self.bias)


class StackedConvNet(nn.Module):
    """M small convolutional classifiers of 28x28 images trained as one module (three 3x3 convolutions, then a head).

    Widths `width`, 2 * width, 2 * width at resolutions 14, 7, 7; each convolution is followed by the network's
    normalization and a ReLU; global average pooling and a linear head with `num_classes` outputs.
    """

    def __init__(self, num_models: int, norm: Norm, width: int = 16, num_classes: int = 5, groups: int = 4,
                 seed: int = 0):
        super().__init__()
        if norm not in ("bn", "gn_ws"):
            raise ValueError(f"norm must be 'bn' or 'gn_ws', not {norm!r}")
        if num_models < 1 or width % groups:
            raise ValueError("StackedConvNet needs at least one model and a width divisible by groups")
        M, ws = num_models, norm == "gn_ws"
        self.num_models, self.norm, self.width, self.groups = M, norm, width, groups
        state = torch.get_rng_state()
        torch.manual_seed(seed)
        try:
            channels = [1, width, 2 * width, 2 * width]
            strides = [2, 2, 1]
            self.convs = nn.ModuleList(
                _Conv(M * c_in, M * c_out, 3, stride=s, padding=1, groups=M, bias=False, standardize=ws)
                for c_in, c_out, s in zip(channels, channels[1:], strides))
            self.norms = nn.ModuleList(
                nn.BatchNorm2d(M * c) if norm == "bn" else nn.GroupNorm(M * groups, M * c) for c in channels[1:])
            self.head_weight = nn.Parameter(torch.randn(M, num_classes, channels[-1]) / channels[-1] ** 0.5)
            self.head_bias = nn.Parameter(torch.zeros(M, num_classes))
        finally:
            torch.set_rng_state(state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, self.num_models):
            raise ValueError(f"StackedConvNet takes images (B, 1 or {self.num_models}, H, W), not {tuple(x.shape)}")
        h = x.expand(-1, self.num_models, -1, -1)
        for conv, norm in zip(self.convs, self.norms):
            h = torch.relu(norm(conv(h)))
        pooled = h.mean(dim=(2, 3)).reshape(len(h), self.num_models, -1)  # (B, M, C)
        return torch.einsum("bmc,mkc->bmk", pooled, self.head_weight) + self.head_bias

    def batchnorms(self) -> list[nn.BatchNorm2d]:
        return [m for m in self.norms if isinstance(m, nn.BatchNorm2d)]

    def use_statistics(self, statistics: Statistics) -> "StackedConvNet":
        """Put the network in training mode, its BatchNorm layers normalizing with each batch's statistics
        ("batch", updating the running estimates) or with the running estimates, left unchanged ("frozen")."""
        if statistics not in ("batch", "frozen"):
            raise ValueError(f"statistics must be 'batch' or 'frozen', not {statistics!r}")
        self.train()
        for bn in self.batchnorms():
            bn.train(statistics == "batch")
        return self


def per_model_batches(num_items: int, batch_size: int, num_models: int, epochs: int,
                      seed: int) -> torch.Tensor:
    """Indices (steps, batch_size, M): every model's own shuffle of range(num_items) each epoch, dropping the
    incomplete last batch."""
    gen = torch.Generator().manual_seed(seed)
    per_epoch = num_items // batch_size
    epochs_idx = [torch.stack([torch.randperm(num_items, generator=gen)[:per_epoch * batch_size]
                               for _ in range(num_models)], dim=1) for _ in range(epochs)]
    return torch.cat(epochs_idx).reshape(epochs * per_epoch, batch_size, num_models)


def fit(net: StackedConvNet, X: torch.Tensor, y: torch.Tensor, batch_size: int, epochs: int, lr: float,
        statistics: Statistics = "batch", seed: int = 0, momentum: float = 0.9, desc: str = "training") -> list[float]:
    """Train every model of `net` with SGD on its own shuffled minibatches of (X (N, 1, H, W), y (N,)).

    Model m's parameters get the gradient of its own mean loss. Returns the mean training loss over models after
    each step, as the network computed it (in the mode `statistics` sets).
    """
    net.use_statistics(statistics)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    batches = per_model_batches(len(X), batch_size, net.num_models, epochs, seed).to(X.device)
    M, losses = net.num_models, []
    for idx in tqdm(batches, desc=desc, leave=False):
        images = X[idx.reshape(-1)].reshape(batch_size, M, *X.shape[2:])
        logits = net(images)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[idx.reshape(-1)], reduction="sum") / batch_size
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item() / M)
    return losses


@torch.no_grad()
def accuracy(net: StackedConvNet, X: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Accuracy of every model on (X, y), shape (M,): in eval mode when `batch_size` is None, else in training mode
    on consecutive batches of `batch_size` images (each normalized with its own statistics; a copy of the network
    runs, so the running estimates stay as they were)."""
    if batch_size is None:
        model, chunk, usable = copy.deepcopy(net).eval(), 1000, len(X)
    else:
        model, chunk, usable = copy.deepcopy(net).use_statistics("batch"), batch_size, len(X) - len(X) % batch_size
    correct = torch.zeros(net.num_models, device=X.device)
    for start in range(0, usable, chunk):
        logits = model(X[start:min(start + chunk, usable)])
        correct += (logits.argmax(dim=2) == y[start:min(start + chunk, usable), None]).sum(dim=0)
    return correct / usable


@torch.no_grad()
def reestimate_statistics(net: StackedConvNet, X: torch.Tensor, batch_size: int = 250) -> StackedConvNet:
    """A copy of `net` whose BatchNorm running estimates are recomputed from scratch on X: the average of the
    statistics of batches of `batch_size` images, weights unchanged. The copy is returned in eval mode."""
    model = copy.deepcopy(net).use_statistics("batch")
    for bn in model.batchnorms():
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over the batches
    for start in range(0, len(X) - len(X) % batch_size, batch_size):
        model(X[start:start + batch_size])
    for bn, original in zip(model.batchnorms(), net.batchnorms()):
        bn.momentum = original.momentum
    return model.eval()


def with_new_head(net: StackedConvNet, seed: int = 0) -> StackedConvNet:
    """A copy of `net` with its linear head drawn afresh (as a new network's, from `seed`): the start of fine-tuning
    on another task with as many classes."""
    model = copy.deepcopy(net)
    fresh = StackedConvNet(net.num_models, net.norm, net.width, net.head_weight.shape[1], net.groups, seed)
    with torch.no_grad():
        model.head_weight.copy_(fresh.head_weight)
        model.head_bias.copy_(fresh.head_bias)
    return model
