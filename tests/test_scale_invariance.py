"""Tests for course_utils.scale_invariance: which layers are scale-invariant, and what the recorder measures."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_oracles import scale_invariance as reference
from course_utils import scale_invariance as si
from course_utils.models import mlp

matplotlib.use("Agg")


def test_are_the_layers_before_a_normalization_found():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3), nn.ReLU(), nn.GroupNorm(2, 4),
                          nn.Conv2d(4, 4, 3), nn.Flatten(), nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    groups = si.scale_invariant_groups(model)
    assert [name for name, _ in groups] == ["0", "3", "8"]
    assert [len(params) for _, params in groups] == [1, 2, 2]
    assert si.scale_invariant_groups(mlp(5, 4, 3, 2, batchnorm=True)) and \
        len(si.scale_invariant_groups(mlp(5, 4, 3, 2, batchnorm=True))) == 3
    assert si.scale_invariant_groups(mlp(5, 4, 3, 2)) == []


@pytest.mark.parametrize("batchnorm_mlp", [False, True])
def test_is_every_found_group_really_scale_invariant(batchnorm_mlp):
    """The oracle: autograd's gradient is orthogonal to the group, and scaling the group leaves the loss unchanged."""
    torch.manual_seed(0)
    if batchnorm_mlp:
        model, X = mlp(6, 8, 4, 3, batchnorm=True).double(), torch.randn(10, 6, dtype=torch.float64)
    else:
        model = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4, eps=1e-12), nn.ReLU(),
                              nn.Conv2d(4, 4, 3, bias=False), nn.GroupNorm(2, 4, eps=1e-12), nn.ReLU(),
                              nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double()
        X = torch.randn(10, 2, 8, 8, dtype=torch.float64)
    for m in model.modules():  # tiny eps: exact invariance up to rounding
        if isinstance(m, nn.BatchNorm1d):
            m.eps = 1e-12
    y = torch.randint(0, 3, (10,))
    loss = F.cross_entropy(model(X), y)
    groups = si.scale_invariant_groups(model)
    grads = torch.autograd.grad(loss, [p for _, params in groups for p in params])
    k = 0
    for _, params in groups:
        g = torch.cat([grads[k + i].reshape(-1) for i in range(len(params))])
        k += len(params)
        w = si.flat(params)
        assert abs(float(g @ w)) < 1e-9 * float(g.norm() * w.norm())
        with torch.no_grad():
            for p in params:
                p.mul_(3.7)
            scaled = F.cross_entropy(model(X), y)
            for p in params:
                p.div_(3.7)
        assert scaled.item() == pytest.approx(loss.item(), rel=1e-9)


@pytest.mark.parametrize("angle", [0.0, 1e-6, 1e-3, 0.4, math.pi / 2, 3.0, math.pi])
def test_is_the_reference_angle_exact_down_to_tiny_angles(angle):
    gen = torch.Generator().manual_seed(1)
    u, v = torch.randn(7, 3, generator=gen, dtype=torch.float64), torch.randn(7, 3, generator=gen, dtype=torch.float64)
    u = u / u.norm()
    v = v - (v.flatten() @ u.flatten()) * u
    v = v / v.norm()
    got = reference.angle_between(2.5 * u, 0.3 * (math.cos(angle) * u + math.sin(angle) * v))
    assert got == pytest.approx(angle, rel=1e-9, abs=1e-15)


def test_does_the_equilibrium_angle_follow_from_the_norm_recursion():
    lr, wd = 0.2, 0.01
    # at equilibrium, lr^2 g^2 = (1 - (1 - lr wd)^2) w^2 and the angle's tangent is lr g / ((1 - lr wd) w)
    g_over_w = math.sqrt(1 - (1 - lr * wd) ** 2) / lr
    assert reference.equilibrium_angle(lr, wd) == pytest.approx(math.atan(lr * g_over_w / (1 - lr * wd)), rel=1e-12)
    assert reference.equilibrium_angle(lr, wd) == pytest.approx(math.sqrt(2 * lr * wd), rel=2e-3)


def test_does_the_recorder_measure_what_sgd_did():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, bias=False), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 6 * 6, 4))
    X, y = torch.randn(40, 1, 8, 8), torch.randint(0, 4, (40,))
    calls = []

    def angle(a, b):
        calls.append(1)
        return reference.angle_between(a, b)

    start = model[0].weight.detach().clone()
    trace = si.train_and_record(model, X, y, lr=0.5, num_steps=7, weight_decay=0.1, batch_size=16, angle=angle,
                                progress=False)
    assert trace.names == ["0"] and len(calls) == 7
    assert trace.sq_norms.shape == (8, 1) and trace.grad_sq_norms.shape == (7, 1) and trace.angles.shape == (7, 1)
    assert trace.sq_norms[0, 0] == pytest.approx(float(start.double().square().sum()))
    assert trace.sq_norms[-1, 0] == pytest.approx(float(model[0].weight.detach().double().square().sum()))
    predicted = (1 - 0.5 * 0.1) ** 2 * trace.sq_norms[:-1] + 0.25 * trace.grad_sq_norms
    np.testing.assert_allclose(predicted, trace.sq_norms[1:], rtol=1e-4)  # BatchNorm's eps and float32 rounding
    np.testing.assert_allclose(trace.effective_lr, 0.5 / trace.sq_norms[:-1])
    np.testing.assert_allclose(trace.relative_steps, 0.5 * np.sqrt(trace.grad_sq_norms / trace.sq_norms[:-1]))
    np.testing.assert_allclose(np.tan(trace.angles), trace.relative_steps / (1 - 0.05), rtol=1e-3)
    assert np.all(np.isfinite(trace.losses)) and len(trace.losses) == 7


def test_does_the_recorder_refuse_a_model_without_normalization():
    with pytest.raises(ValueError, match="normalization"):
        si.train_and_record(mlp(4, 3, 2, 2), torch.randn(8, 4), torch.randint(0, 2, (8,)), 0.1, 2,
                            angle=reference.angle_between, progress=False)


def test_do_the_plots_draw_every_group():
    torch.manual_seed(0)
    model = mlp(5, 6, 3, 2, batchnorm=True)
    trace = si.train_and_record(model, torch.randn(64, 5), torch.randint(0, 2, (64,)), 0.1, 30, batch_size=8,
                                angle=reference.angle_between, progress=False)
    fig, axes = si.plot_traces({"a": trace, "b": trace}, window=5)
    assert len(axes[0].get_lines()) == 6 and len(axes[2].get_lines()) == 6
    fig, axes = si.plot_layer_profile(trace, [0, 29])
    assert len(axes[0].get_lines()) == 2
