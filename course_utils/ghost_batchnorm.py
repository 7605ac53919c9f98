"""Ghost BatchNorm and dropout on stacks of MLPs, and test accuracy read at a matched training accuracy.

Ghost BatchNorm (Hoffer et al., 2017) keeps the optimizer's batch and normalizes each group of `group_size`
consecutive examples with the group's own statistics, so the noise of BatchNorm's statistics changes while the
minibatch gradient's does not. `GhostStack` is a `NormStack` with that grouping (in training only; evaluation
uses the statistics of all of X, as `NormStack` does) and per-model dropout after every hidden ReLU.
`at_matched_accuracy` reads each model's test accuracy at the first epoch its training accuracy reaches a
target, so a regularizer that only slows training does not look like one. Used by why_batchnorm_helps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .norm_ablation import Normalize, NormStack


class GhostStack(NormStack):
    """M ReLU MLPs, each hidden layer Linear -> normalize in ghost groups -> affine -> ReLU -> dropout.

    Args:
        group_size: in training, the batch is split into consecutive groups of this many examples, each
            normalized with its own statistics (None: the whole batch, plain BatchNorm).
        dropout: the probability of dropping a hidden unit in training, one for all models or one per model
            (inverted dropout: kept units are divided by 1 - p).
        The other arguments are `NormStack`'s.
    """

    def __init__(self, normalize: Normalize, kind: str, seeds: Sequence[int], in_features: int, width: int,
                 depth: int, out_features: int, group_size: int | None = None,
                 dropout: float | Sequence[float] = 0.0):
        super().__init__(normalize, kind, seeds, in_features, width, depth, out_features)
        rates = torch.as_tensor(dropout, dtype=torch.float32).expand(len(seeds)).clone()
        if group_size is not None and group_size < 2:
            raise ValueError(f"a ghost group needs at least two examples, not {group_size}")
        if ((rates < 0) | (rates >= 1)).any():
            raise ValueError(f"dropout rates must lie in [0, 1), not {rates.tolist()}")
        self.group_size = group_size
        self.register_buffer("dropout", rates.view(-1, 1, 1))
        self.dropout_gen = torch.Generator().manual_seed(int(seeds[0]) if len(seeds) else 0)

    def _normalize(self, h: torch.Tensor) -> torch.Tensor:
        """The normalization of h (M, batch, units), over ghost groups in training."""
        g = self.group_size
        if not self.training or g is None or g == h.shape[1]:
            return self.normalize(h, self.kind)
        M, batch, units = h.shape
        if batch % g:
            raise ValueError(f"a batch of {batch} does not split into ghost groups of {g}")
        return self.normalize(h.reshape(M, batch // g, g, units), self.kind).reshape(M, batch, units)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits (M, batch, out) for X of shape (batch, in), shared, or (M, batch, in), one batch per model."""
        h = X if X.dim() == 3 else X.unsqueeze(0).expand(self.num_models, -1, -1)
        for i in range(self.depth):
            h = torch.baddbmm(self.biases[i], h, self.weights[i])
            if self.kind != "none":
                h = self._normalize(h) * self.gammas[i] + self.betas[i]
            h = torch.relu(h)
            if self.training and bool((self.dropout > 0).any()):
                u = torch.rand(h.shape, generator=self.dropout_gen).to(h)
                h = h * (u >= self.dropout) / (1 - self.dropout)
        return torch.baddbmm(self.biases[-1], h, self.weights[-1])


@dataclass
class Matched:
    """Per model, at the first epoch whose training accuracy reaches the target (NaN where none does)."""

    epoch: np.ndarray  # 1-based epoch, float for NaN
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        """Training minus test accuracy at the matched epoch."""
        return self.train_accuracy - self.test_accuracy


def at_matched_accuracy(train_accuracy: Sequence[Sequence[float]], test_accuracy: Sequence[Sequence[float]],
                        target: float) -> Matched:
    """Read every model's accuracies at the first epoch its training accuracy is at least `target`.

    train_accuracy, test_accuracy: per epoch, one value per model, shape (epochs, M).
    """
    train, test = np.asarray(train_accuracy, dtype=float), np.asarray(test_accuracy, dtype=float)
    if train.ndim != 2 or train.shape != test.shape:
        raise ValueError(f"accuracies must both be (epochs, models), not {train.shape} and {test.shape}")
    reached = train >= target
    first = reached.argmax(axis=0)
    ok = reached.any(axis=0)
    models = np.arange(train.shape[1])
    nan = np.full(train.shape[1], np.nan)
    return Matched(np.where(ok, first + 1.0, nan), np.where(ok, train[first, models], nan),
                   np.where(ok, test[first, models], nan))
