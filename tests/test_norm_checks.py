"""Tests for course_utils.norm_checks: the oracle against finite differences, the checks against typical slips."""

import numpy as np
import pytest
import torch

from course_utils import gradcheck as gc
from course_utils import norm_checks as nc


def make_forward(axis=0, ddof=0, norm_axis=None):
    """A NumPy normalization layer; `norm_axis` and `ddof` let a test plant a slip."""
    norm_axis = axis if norm_axis is None else norm_axis

    def forward(x, gamma, beta, eps=1e-5):
        mu = x.mean(axis=norm_axis, keepdims=True)
        sigma = np.sqrt(x.var(axis=norm_axis, ddof=ddof, keepdims=True) + eps)
        x_hat = (x - mu) / sigma
        return gamma * x_hat + beta, (x, x_hat, sigma, gamma, beta)

    forward.__name__ = "my_forward"
    return forward


def make_backward(axis=0, slip=None):
    def backward(dout, cache):
        x, x_hat, sigma, gamma, beta = cache
        g = dout * gamma
        mean = lambda a: a.mean(axis=axis, keepdims=True)
        dx = {
            None: (g - mean(g) - x_hat * mean(g * x_hat)) / sigma,
            "no_mean_no_var": g / sigma,
            "no_var": (g - mean(g)) / sigma,
        }.get(slip, (g - mean(g) - x_hat * mean(g * x_hat)) / sigma)
        dgamma = (dout * x_hat).sum(0)
        dbeta = (gamma * x_hat + beta).sum(0) if slip == "dbeta_from_out" else dout.sum(0)
        return dx, dgamma, dbeta

    backward.__name__ = "my_backward"
    return backward


def autograd_backward(dout, cache):
    x, _, _, gamma, beta = cache
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    out = gt * (xt - xt.mean(0)) / torch.sqrt(xt.var(0, unbiased=False) + 1e-5) + bt
    out.backward(torch.from_numpy(dout))
    return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("axis", [0, 1])
def test_reference_matches_finite_differences(axis):
    rng = np.random.default_rng(axis)
    x, gamma, beta, dout = rng.normal(size=(6, 5)), rng.normal(size=5), rng.normal(size=5), rng.normal(size=(6, 5))
    ref = nc.norm_reference(x, gamma, beta, dout, axis=axis, eps=1e-3)
    forward = make_forward(axis)
    np.testing.assert_allclose(ref["out"], forward(x, gamma, beta, 1e-3)[0], rtol=1e-12)
    grads = {
        "dx": gc.numerical_gradient_array(lambda z: forward(z, gamma, beta, 1e-3)[0], x, dout),
        "dgamma": gc.numerical_gradient_array(lambda g: forward(x, g, beta, 1e-3)[0], gamma, dout),
        "dbeta": gc.numerical_gradient_array(lambda b: forward(x, gamma, b, 1e-3)[0], beta, dout),
    }
    for key, num in grads.items():
        assert gc.rel_error(ref[key], num) < 1e-8, key


@pytest.mark.parametrize("axis", [0, 1])
def test_correct_layers_pass(axis):
    nc.check_norm_forward(make_forward(axis), axis=axis, trials=10)
    nc.check_norm_backward(make_forward(axis), make_backward(axis), axis=axis, trials=10)


def test_forward_on_the_wrong_axis_is_named():
    with pytest.raises(AssertionError, match=r"my_forward's out is off .*over the features \(axis=1\)"):
        nc.check_norm_forward(make_forward(norm_axis=1))
    with pytest.raises(AssertionError, match=r"over the batch \(axis=0\), but layer norm"):
        nc.check_norm_forward(make_forward(axis=1, norm_axis=0), axis=1)


def test_unbiased_variance_is_named():
    with pytest.raises(AssertionError, match=r"relative error .* unbiased variance"):
        nc.check_norm_forward(make_forward(ddof=1))


def test_backward_needs_a_correct_forward_first():
    with pytest.raises(AssertionError, match="my_forward does not pass its own test yet"):
        nc.check_norm_backward(make_forward(ddof=1), make_backward())


@pytest.mark.parametrize("slip, quantity, words", [
    ("no_mean_no_var", "dx", "through the mean and the variance"),
    ("no_var", "dx", "forgets the path through the variance"),
    ("dbeta_from_out", "dbeta", "sums the layer's outputs"),
])
def test_backward_slips_are_named(slip, quantity, words):
    with pytest.raises(AssertionError, match=rf"my_backward's {quantity} is off .*{words}"):
        nc.check_norm_backward(make_forward(), make_backward(slip=slip))


def test_backward_calling_autograd_is_rejected():
    with pytest.raises(AssertionError, match="autograd_backward called torch autograd"):
        nc.check_norm_backward(make_forward(), autograd_backward)
    nc.check_norm_backward(make_forward(), make_backward())  # autograd is back afterwards for the oracle


def test_in_place_changes_and_wrong_returns_are_reported():
    def shifts_in_place(x, gamma, beta, eps=1e-5):
        x -= x.mean(0)
        return make_forward()(x, gamma, beta, eps)

    with pytest.raises(AssertionError, match="x changed"):
        nc.check_norm_forward(shifts_in_place)
    with pytest.raises(AssertionError, match=r"should return a pair \(out, cache\)"):
        nc.check_norm_forward(lambda x, gamma, beta, eps: gamma * x + beta)
    with pytest.raises(AssertionError, match="should be a ndarray"):
        nc.check_norm_backward(make_forward(), lambda dout, cache: (torch.zeros(1), None, None))
