"""The diabetes loader, gradient descent on least squares, the measured largest stable step and the ReLU features."""

import math

import numpy as np
import pytest
import torch

from course_utils import linreg


def test_load_diabetes_is_the_raw_data():
    X, y, names = linreg.load_diabetes()
    assert X.shape == (442, 10) and y.shape == (442,)
    assert X.dtype == y.dtype == torch.float64
    assert names == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    # First patient of Efron et al. (2004), Table 1, in the original units.
    torch.testing.assert_close(X[0], torch.tensor([59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87],
                                                  dtype=torch.float64), rtol=0, atol=1e-4)
    assert y[0].item() == 151
    assert set(X[:, 1].tolist()) == {1.0, 2.0}  # sex is coded 1 or 2: the features are not pre-scaled


def test_load_diabetes_dtype_and_device():
    X, y, _ = linreg.load_diabetes(dtype=torch.float32, device="cpu")
    assert X.dtype == y.dtype == torch.float32 and X.device.type == "cpu"


def test_with_intercept_appends_ones():
    X = torch.randn(5, 3, dtype=torch.float64)
    A = linreg.with_intercept(X)
    assert A.shape == (5, 4) and A.dtype == X.dtype
    assert torch.equal(A[:, :3], X) and torch.equal(A[:, 3], torch.ones(5, dtype=torch.float64))


def test_least_squares_loss_single_and_stacked():
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(20, 3, generator=gen, dtype=torch.float64), torch.randn(20, generator=gen, dtype=torch.float64)
    W, b = torch.randn(4, 3, generator=gen, dtype=torch.float64), torch.randn(4, generator=gen, dtype=torch.float64)
    want = [0.5 * np.mean((X.numpy() @ W[i].numpy() + b[i].item() - y.numpy()) ** 2) for i in range(4)]
    np.testing.assert_allclose(linreg.least_squares_loss(X, y, W, b).numpy(), want, rtol=1e-12)
    assert linreg.least_squares_loss(X, y, W[1], b[1]).item() == pytest.approx(want[1], rel=1e-12)


def test_minimum_loss_matches_normal_equations():
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(50, 4, generator=gen, dtype=torch.float64) + 3
    y = torch.randn(50, generator=gen, dtype=torch.float64)
    A = np.c_[X.numpy(), np.ones(50)]
    theta = np.linalg.solve(A.T @ A, A.T @ y.numpy())
    assert linreg.minimum_loss(X, y) == pytest.approx(0.5 * np.mean((A @ theta - y.numpy()) ** 2), rel=1e-10)
    theta = np.linalg.solve(X.numpy().T @ X.numpy(), X.numpy().T @ y.numpy())
    assert linreg.minimum_loss(X, y, intercept=False) == pytest.approx(
        0.5 * np.mean((X.numpy() @ theta - y.numpy()) ** 2), rel=1e-10)


def plain_gradient_descent(X, y, lr, num_steps, intercept):
    """The oracle: gradient descent written with residuals, one learning rate at a time, in NumPy."""
    X, y = X.numpy(), y.numpy()
    w, b, losses = np.zeros(X.shape[1]), 0.0, []
    for t in range(num_steps + 1):
        r = X @ w + b - y
        losses.append(0.5 * np.mean(r**2))
        if t < num_steps:
            w, b = w - lr * X.T @ r / len(X), (b - lr * r.mean()) if intercept else 0.0
    return np.array(losses), w, b


@pytest.mark.parametrize("intercept", [True, False])
def test_gradient_descent_matches_the_residual_form(intercept):
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(30, 5, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 3, 0.5, 2, 1]) + 2
    y = torch.randn(30, generator=gen, dtype=torch.float64) + 4
    lrs = [0.001, 0.01, 0.05]
    run = linreg.gradient_descent(X, y, lrs, 40, intercept=intercept, progress=False)
    assert run.losses.shape == (3, 41) and run.w.shape == (3, 5) and run.b.shape == (3,)
    for i, lr in enumerate(lrs):
        losses, w, b = plain_gradient_descent(X, y, lr, 40, intercept)
        np.testing.assert_allclose(run.losses[i].numpy(), losses, rtol=1e-10)
        np.testing.assert_allclose(run.w[i].numpy(), w, rtol=1e-10, atol=1e-12)
        assert run.b[i].item() == pytest.approx(b, rel=1e-10, abs=1e-12)


def test_gradient_descent_keeps_dtype_and_reports_divergence():
    X = torch.randn(20, 2, dtype=torch.float32)
    run = linreg.gradient_descent(X, torch.randn(20), [1e-3, 1e3], 200, progress=False)
    assert run.losses.dtype == torch.float32
    assert linreg.diverged(run.losses).tolist() == [False, True]


def test_diverged_flags_growth_and_overflow():
    losses = torch.tensor([[1.0, 0.5, 0.4], [1.0, 2.0, 3.0], [1.0, 2.0, float("nan")], [1.0, 5.0, float("inf")]])
    assert linreg.diverged(losses).tolist() == [False, True, True, True]


@pytest.mark.parametrize("intercept", [True, False])
def test_largest_stable_lr_finds_two_over_L(intercept):
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(100, 4, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.2, 2.0]) + 1.5
    y = torch.randn(100, generator=gen, dtype=torch.float64)
    A = np.c_[X.numpy(), np.ones(100)] if intercept else X.numpy()
    L = np.linalg.eigvalsh(A.T @ A / 100).max()
    got = linreg.largest_stable_lr(X, y, 1e-5, 10.0, num_steps=1500, intercept=intercept, progress=False)
    assert 0.98 * 2 / L <= got <= 1.01 * 2 / L


def test_largest_stable_lr_edges():
    X, y = torch.randn(40, 3, dtype=torch.float64), torch.randn(40, dtype=torch.float64)
    assert math.isnan(linreg.largest_stable_lr(X, y, 100.0, 1000.0, 300, progress=False))
    assert linreg.largest_stable_lr(X, y, 1e-6, 1e-4, 300, progress=False) == pytest.approx(1e-4)


def test_relu_features_scale_is_positively_homogeneous():
    X = torch.randn(50, 6, dtype=torch.float64)
    H1 = linreg.relu_features(X, 16, scale=1.0, seed=4)
    H3 = linreg.relu_features(X, 16, scale=3.0, seed=4)
    assert H1.shape == (50, 16) and H1.dtype == torch.float64 and (H1 >= 0).all()
    torch.testing.assert_close(H3, 3.0 * H1)
    assert not torch.equal(H1, linreg.relu_features(X, 16, seed=5))


def test_relu_features_draw_like_nn_linear():
    # Same law as nn.Linear's default initialization: weights and biases uniform in [-1/sqrt(d), 1/sqrt(d)].
    d = 9
    X = torch.eye(d, dtype=torch.float64)  # row i of X W^T + c is column i of W plus c
    H = linreg.relu_features(torch.cat([X, torch.zeros(1, d, dtype=torch.float64)]), 20000, seed=6)
    c = H[-1]  # ReLU(c) from the zero row
    bound = 1 / math.sqrt(d)
    assert c.max() <= bound and H[:-1].max() <= 2 * bound
    frac_positive = (c > 0).double().mean().item()
    assert frac_positive == pytest.approx(0.5, abs=0.02)
    assert (c[c > 0].mean().item()) == pytest.approx(bound / 2, rel=0.05)


def test_load_diabetes_equals_scikit_learns_loader():
    from sklearn.datasets import load_diabetes as sklearn_diabetes

    bunch = sklearn_diabetes(scaled=False)
    X, y, names = linreg.load_diabetes()
    np.testing.assert_array_equal(X.numpy(), bunch.data)
    np.testing.assert_array_equal(y.numpy(), bunch.target)
    assert names == list(bunch.feature_names)


def test_load_diabetes_falls_back_to_scikit_learn(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    X, y, _ = linreg.load_diabetes()
    assert X.shape == (442, 10) and y[0].item() == 151


def test_gradient_descent_restores_the_thread_count():
    before = torch.get_num_threads()
    linreg.gradient_descent(torch.randn(10, 2), torch.randn(10), [0.1], 3, progress=False)
    assert torch.get_num_threads() == before
