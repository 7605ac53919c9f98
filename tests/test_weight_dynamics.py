"""Tests for course_utils.weight_dynamics: relative step sizes recorded per layer, and their plot."""

from __future__ import annotations

import copy

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_utils import weight_dynamics as wd

matplotlib.use("Agg")


def small_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(50, 5, generator=gen), torch.randint(0, 3, (50,), generator=gen)


def test_is_the_first_step_the_one_sgd_takes_on_the_seeded_batch():
    model, (X, y) = small_model(), data()
    twin = copy.deepcopy(model)
    got = wd.relative_steps(model, ["0", "3"], X, y, lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01), 3,
                            batch_size=16, seed=4)
    assert got.shape == (3, 2)
    idx = torch.randint(0, 50, (16,), generator=torch.Generator().manual_seed(4))
    F.cross_entropy(twin(X[idx]), y[idx]).backward()
    for column, layer in enumerate([twin[0], twin[3]]):
        step = 0.1 * (layer.weight.grad + 0.01 * layer.weight.detach())
        assert got[0, column] == pytest.approx((step.norm() / layer.weight.norm()).item(), rel=1e-5)


def test_does_a_scale_invariant_weight_settle_near_the_equilibrium_step():
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(2048, 20, generator=gen), torch.randint(0, 10, (2048,), generator=gen)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))
    got = wd.relative_steps(model, ["0"], X, y, lambda p: torch.optim.SGD(p, lr=0.2, weight_decay=0.02), 1500)
    assert got[-300:, 0].mean() == pytest.approx(np.sqrt(2 * 0.2 * 0.02), rel=0.1)


def test_is_an_unknown_layer_named_in_the_error():
    X, y = data()
    with pytest.raises(KeyError, match="'7'"):
        wd.relative_steps(small_model(), ["7"], X, y, lambda p: torch.optim.SGD(p, lr=0.1), 1)


def test_does_the_plot_smooth_each_curve_over_its_window():
    fig, ax = wd.plot_relative_steps({"a": np.ones(30), "b": np.arange(1, 31, dtype=float)}, window=10)
    assert len(ax.lines) == 2 and len(ax.lines[0].get_xdata()) == 21
    assert ax.lines[1].get_ydata()[0] == pytest.approx(5.5)


def test_is_a_curve_shorter_than_the_window_averaged_whole():
    fig, ax = wd.plot_relative_steps({"short": np.array([1.0, 3.0])}, window=25)
    assert list(ax.lines[0].get_ydata()) == [2.0]
