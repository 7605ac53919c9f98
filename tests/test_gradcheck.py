"""Tests for course_utils.gradcheck, with torch autograd in float64 as the oracle."""

import numpy as np
import pytest
import torch

from course_utils import gradcheck as gc


def _autograd(f_torch, x: np.ndarray, dout: np.ndarray | None = None) -> np.ndarray:
    """The gradient of f (or of sum(f * dout)) at x by torch autograd in float64."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = f_torch(xt)
    (out if dout is None else (out * torch.from_numpy(dout)).sum()).backward()
    return xt.grad.numpy()


def _bn_numpy(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    return gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + beta


def _bn_torch(x: torch.Tensor, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> torch.Tensor:
    mu, var = x.mean(0), x.var(0, unbiased=False)
    return torch.from_numpy(gamma) * (x - mu) / torch.sqrt(var + eps) + torch.from_numpy(beta)


def _bn_dx_without_variance_path(x, gamma, dout, eps=1e-5):
    """A wrong BN backward: it keeps the mean's path but forgets the variance's."""
    return gamma / np.sqrt(x.var(0) + eps) * (dout - dout.mean(0))


def test_numerical_gradient_matches_autograd():
    x = np.random.default_rng(0).standard_normal((3, 4))
    num = gc.numerical_gradient(lambda z: np.sum(np.sin(z) * z**2), x)
    ref = _autograd(lambda z: (torch.sin(z) * z**2).sum(), x)
    assert gc.rel_error(num, ref) < 1e-9


def test_numerical_gradient_leaves_input_unchanged():
    x = np.random.default_rng(1).standard_normal(5)
    before = x.copy()
    gc.numerical_gradient(lambda z: np.sum(z**3), x)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_array_matches_autograd_vjp():
    rng = np.random.default_rng(2)
    x, dout = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    softmax = lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)
    num = gc.numerical_gradient_array(softmax, x, dout)
    ref = _autograd(lambda z: torch.softmax(z, 1), x, dout)
    assert gc.rel_error(num, ref) < 1e-9


def test_float32_input_is_promoted_to_float64():
    rng = np.random.default_rng(3)
    x, gamma, beta = rng.standard_normal((8, 3)), rng.standard_normal(3), rng.standard_normal(3)
    dout = rng.standard_normal((8, 3))
    ref = _autograd(lambda z: _bn_torch(z, gamma, beta), x.astype(np.float32).astype(np.float64), dout)
    x32 = x.astype(np.float32)
    num = gc.numerical_gradient_array(lambda z: _bn_numpy(z, gamma, beta), x32, dout)
    assert num.dtype == np.float64
    assert gc.rel_error(num, ref) < 1e-8
    # Without the promotion, the steps of size h are lost in float32 rounding.
    naive = gc.numerical_gradient_array(
        lambda z: _bn_numpy(z.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32)), x32, dout
    )
    assert gc.rel_error(naive, ref) > 1e-3


def test_rel_error_scale_and_symmetry():
    a = np.random.default_rng(4).standard_normal((4, 5))
    assert gc.rel_error(a, a) == 0.0
    assert gc.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gc.rel_error(a, -a) == pytest.approx(1.0)
    assert gc.rel_error(a, 1e6 * a) == pytest.approx((1e6 - 1) / (1e6 + 1))
    b = a + 1e-3 * np.random.default_rng(5).standard_normal(a.shape)
    assert gc.rel_error(a, b) == pytest.approx(gc.rel_error(b, a))
    assert gc.rel_error(torch.from_numpy(a), a) == 0.0


def test_rel_error_ignores_noise_in_entries_near_zero():
    a = np.array([1.0, 2.0, 1e-17])
    b = np.array([1.0, 2.0, -1e-17])
    assert gc.rel_error(a, b) < 1e-16


def test_rel_error_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        gc.rel_error(np.zeros(3), np.zeros((3, 1)))


def test_all_ones_upstream_gradient_hides_a_wrong_backward_pass():
    rng = np.random.default_rng(6)
    x, gamma, beta = rng.standard_normal((10, 4)), rng.standard_normal(4), rng.standard_normal(4)
    bn = lambda z: _bn_numpy(z, gamma, beta)

    ones = np.ones_like(x)
    with pytest.warns(UserWarning, match="constant"):
        num = gc.numerical_gradient_array(bn, x, ones)
    right = _autograd(lambda z: _bn_torch(z, gamma, beta), x, ones)
    wrong = _bn_dx_without_variance_path(x, gamma, ones)
    # Right, wrong and numerical gradients all vanish: no tolerance can tell them apart.
    assert max(np.abs(num).max(), np.abs(right).max(), np.abs(wrong).max()) < 1e-8

    dout = gc.random_upstream(x.shape, seed=7)
    num = gc.numerical_gradient_array(bn, x, dout)
    right = _autograd(lambda z: _bn_torch(z, gamma, beta), x, dout)
    wrong = _bn_dx_without_variance_path(x, gamma, dout)
    assert gc.rel_error(right, num) < 1e-8
    assert gc.rel_error(wrong, num) > 1e-2


def test_random_upstream_is_reproducible_and_not_constant():
    a, b = gc.random_upstream((5, 3), seed=1), gc.random_upstream((5, 3), seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float64 and np.ptp(a) > 0


def test_error_table_lists_every_parameter_and_pair():
    g = {"dx": np.ones(3), "dgamma": np.ones(2)}
    table = gc.error_table({"mine": g, "torch": {"dx": -np.ones(3), "dgamma": np.ones(2)}})
    lines = table.splitlines()
    assert "mine vs torch" in lines[0]
    assert lines[2].split() == ["dx", "1.0e+00"]
    assert lines[3].split() == ["dgamma", "0.0e+00"]
