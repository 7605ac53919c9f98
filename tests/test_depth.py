"""Tests for course_utils.depth: the measurements mlp_depth_sweep makes of deep MLPs."""

from __future__ import annotations

import math

import torch
from torch import nn

from course_oracles import depth as reference
from course_utils import depth
from course_utils.models import mlp


def test_are_preactivation_mean_squares_those_of_the_networks_built_from_the_seeds():
    X = torch.randn(64, 12, generator=torch.Generator().manual_seed(0))
    q = depth.preactivation_mean_squares(X, 3, width=16, num_nets=4, seed=5, progress=False)
    assert q.shape == (4, 3)
    torch.manual_seed(7)
    model = mlp(12, 16, 3, 10)
    with torch.no_grad():
        z2 = model[2](model[1](model[0](X)))
    assert math.isclose(q[2, 1].item(), z2.pow(2).mean().item(), rel_tol=1e-5)


def test_does_he_initialization_keep_the_first_layers_mean_square_at_twice_the_inputs_on_average():
    X = torch.randn(128, 200, generator=torch.Generator().manual_seed(1))
    q = depth.preactivation_mean_squares(X, 1, width=64, num_nets=40, progress=False)
    assert abs(q.mean().item() / (2 * X.pow(2).mean().item()) - 1) < 0.05


def test_are_weight_gradient_norms_those_of_autograd_and_is_grad_left_alone():
    torch.manual_seed(0)
    model, X, y = mlp(5, 6, 2, 3, batchnorm=True), torch.randn(9, 5), torch.randint(0, 3, (9,))
    model[0].weight.grad = torch.ones_like(model[0].weight)
    sq = reference.weight_grad_sq_norms(model, X, y)
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(nn.functional.cross_entropy(model(X), y), weights)
    torch.testing.assert_close(sq, torch.stack([g.double().pow(2).sum() for g in grads]))
    assert torch.equal(model[0].weight.grad, torch.ones_like(model[0].weight))


def test_does_the_fitted_growth_recover_a_geometric_profile():
    layers = torch.arange(7, dtype=torch.float64)
    sq = torch.stack([3.0 * 1.5 ** (6 - layers), 0.5 * 0.9 ** (6 - layers)])
    torch.testing.assert_close(depth.growth_per_layer(sq), torch.tensor([1.5, 0.9], dtype=torch.float64))


def test_do_batchnorm_gradients_grow_by_about_the_mean_field_factor_and_plain_ones_stay_level():
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(256, 128, generator=gen), torch.randint(0, 10, (256,), generator=gen)
    bn = depth.growth_per_layer(depth.init_grad_sq_norms(X, y, 20, True, 128, "before_relu", num_nets=3))
    plain = depth.growth_per_layer(depth.init_grad_sq_norms(X, y, 20, False, 128, num_nets=3))
    assert 1.4 < bn.mean().item() < 1.65  # lambda(32) = 1.522 in the infinitely wide limit
    assert 0.85 < plain.mean().item() < 1.15


def test_are_weight_norms_listed_input_layer_first():
    model = mlp(4, 3, 2, 2)
    norms = depth.weight_norms(model)
    assert norms.shape == (3,) and math.isclose(norms[0].item(), model[0].weight.norm().item(), rel_tol=1e-6)
