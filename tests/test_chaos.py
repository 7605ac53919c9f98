"""Do bn_chaos's helpers measure what they say: batches, activations, correlations, affine fits, lambda(B)?"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_oracles import chaos as reference
from course_utils import chaos


def deep_linear_bn(width, depth, seed=0):
    torch.manual_seed(seed)
    layers = []
    for _ in range(depth):
        linear = nn.Linear(width, width, bias=False)
        nn.init.orthogonal_(linear.weight)
        layers += [linear, nn.BatchNorm1d(width)]
    return nn.Sequential(*layers)


def test_circle_batches_share_all_points_but_the_first():
    """Are the two batches float64 points on one unit circle in a plane, equal except point 0, moved by 0.1?"""
    A, B = chaos.circle_batches(20, 16, 0.1, generator=torch.Generator().manual_seed(1))
    assert A.shape == B.shape == (16, 20) and A.dtype == B.dtype == torch.float64
    assert torch.equal(A[1:], B[1:]) and not torch.equal(A[0], B[0])
    assert torch.allclose(A[1:].norm(dim=1), torch.ones(15, dtype=torch.float64))
    assert torch.linalg.matrix_rank(A[1:]) == 2
    original = (A[1] + A[-1]) / (2 * math.cos(2 * math.pi / 16))  # point 0 before the move, at angle 0
    for X in (A, B):
        assert float((X[0] - original).norm()) == pytest.approx(0.1, rel=1e-9)


def test_layer_outputs_lists_input_and_every_batchnorm_output():
    """Does layer_outputs return the input and then each BatchNorm layer's output, without a graph?"""
    net = deep_linear_bn(6, 3)
    X = torch.randn(10, 6)
    outs = chaos.layer_outputs(net, X)
    assert len(outs) == 4 and outs[0] is X
    h = X
    for i in range(3):
        h = net[2 * i + 1](net[2 * i](h))
        assert torch.allclose(outs[i + 1], h, atol=1e-6)
    assert not outs[-1].requires_grad


def test_shared_correlation_ignores_point_zero():
    """Is the correlation 1 for batches that differ only in point 0, and near 0 for unrelated ones?"""
    a = torch.randn(50, 8)
    b = a.clone()
    b[0] = 100.0
    assert chaos.shared_correlation(a, b) == pytest.approx(1.0, abs=1e-12)
    assert abs(chaos.shared_correlation(a, torch.randn(50, 8))) < 0.15


def test_affine_fit_residual_is_zero_for_affine_images_and_one_for_noise():
    """Is the residual ~0 for an affine image of low-rank points, small for a slightly perturbed one, ~1 for noise?"""
    X, _ = chaos.circle_batches(30, 40, generator=torch.Generator().manual_seed(2))
    A, b = torch.randn(30, 30, dtype=torch.float64), torch.randn(30, dtype=torch.float64)
    H = X @ A.T + b
    assert chaos.affine_fit_residual(H, X) < 1e-12
    noisy = H + 1e-4 * torch.randn_like(H)
    assert 1e-6 < chaos.affine_fit_residual(noisy, X) < 1e-3
    assert chaos.affine_fit_residual(torch.randn(40, 30), X) > 0.9


def test_float32_round_off_leaves_the_ellipse_but_float64_stays_on_it():
    """Through 40 linear BatchNorm layers, do float32 points leave the affine image of the circle, float64 not?"""
    net = deep_linear_bn(64, 40, seed=3)
    X, _ = chaos.circle_batches(64, 32, generator=torch.Generator().manual_seed(3))
    r32 = chaos.affine_fit_residual(chaos.layer_outputs(net.float(), X.float())[-1][1:], X[1:])
    r64 = chaos.affine_fit_residual(chaos.layer_outputs(net.double(), X)[-1][1:], X[1:])
    assert r64 < 1e-3 < 1e-1 < r32


def test_bn_gradient_growth_matches_the_closed_form_and_its_limit():
    """Does lambda(B) match the formula at B = 8 and 32, decrease with B, and tend to pi / (pi - 1)?"""
    def by_hand(B):
        c = -1 / (B - 1)
        J1 = (np.sqrt(1 - c**2) + (np.pi - np.arccos(c)) * c) / np.pi
        return ((B - 1 + (np.pi - np.arccos(c)) / np.pi) / (1 - J1) - 1) / (B - 3)

    for B in (4, 8, 32, 1000):
        assert reference.bn_gradient_growth(B) == pytest.approx(by_hand(B), rel=1e-12)
    assert reference.bn_gradient_growth(32) == pytest.approx(1.522, abs=5e-4)
    values = [reference.bn_gradient_growth(B) for B in (8, 16, 64, 10**6)]
    assert values == sorted(values, reverse=True)
    assert values[-1] == pytest.approx(math.pi / (math.pi - 1), rel=1e-5)
    with pytest.raises(ValueError):
        reference.bn_gradient_growth(3)
