"""Tests for course_utils.sweep: the vectorized sweep against the one-model-at-a-time reference loop."""

from __future__ import annotations

import math

import pytest
import torch

from course_oracles import sweep as reference
from course_oracles.train import evaluate
from course_utils import sweep
from course_utils.models import mlp


@pytest.fixture(scope="module")
def toy() -> tuple[torch.Tensor, torch.Tensor]:
    """100 points in 12 dimensions with 10 classes, in float64 so both paths agree to rounding."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(100, 12, generator=gen, dtype=torch.float64)
    return X, torch.randint(0, 10, (100,), generator=gen)


def test_does_the_vectorized_sweep_give_the_losses_of_the_per_model_loop(toy):
    X, y = toy
    args = dict(depths=[1, 3], lrs=[0.01, 0.3], seeds=(0, 1), num_epochs=2, batch_size=16, width=8,
                X_test=X[:30], y_test=y[:30], progress=False)
    fast = sweep.sweep(X, y, vectorized=True, **args)
    slow = sweep.sweep(X, y, vectorized=False, **args)
    assert [(r.batchnorm, r.depth, r.lr, r.seed) for r in fast] == [(r.batchnorm, r.depth, r.lr, r.seed) for r in slow]
    assert len(fast) == 2 * 2 * 2 * 2
    for a, b in zip(fast, slow):
        torch.testing.assert_close(torch.tensor(a.losses), torch.tensor(b.losses), rtol=1e-9, atol=1e-12)
        assert a.train_acc == pytest.approx(b.train_acc) and a.test_acc == pytest.approx(b.test_acc)
    assert fast[0].losses != fast[1].losses, "seeds 0 and 1 should give different networks"


def test_does_training_reduce_the_loss_at_a_sensible_learning_rate(toy):
    X, y = toy
    (run,) = sweep.sweep(X, y, [2], [0.1], batchnorm=[True], num_epochs=5, batch_size=10, width=16, progress=False)
    assert run.final_loss < 0.8 * run.start_loss
    assert len(run.losses) == 6 and math.isnan(run.test_acc)


def test_are_models_that_blow_up_stopped_while_the_others_train_on(toy):
    X, y = toy
    args = dict(depths=[4], lrs=[0.01, 1e6], batchnorm=[False], num_epochs=3, batch_size=10, width=8, progress=False)
    fast = sweep.sweep(X.float(), y, vectorized=True, **args)
    slow = sweep.sweep(X.float(), y, vectorized=False, **args)
    for runs in (fast, slow):
        assert len(runs[0].losses) == 4 and all(math.isfinite(v) for v in runs[0].losses)
        assert len(runs[1].losses) < 4 and not math.isfinite(runs[1].final_loss)
    torch.testing.assert_close(torch.tensor(fast[0].losses), torch.tensor(slow[0].losses), rtol=1e-4, atol=1e-5)
    assert len(fast[1].losses) == len(slow[1].losses)


@pytest.mark.parametrize("losses, expected", [
    ([2.3, 1.5, 0.9], False),
    ([2.3, 2.9, 1.0], False),  # a bump on the way down is not divergence
    ([2.3, 1.5, 2.4], True),  # ends above its start
    ([2.3, float("nan")], True),
    ([2.3, 1.9, float("inf"), 1.2], True),
    ([2.3, float("-inf")], True),
])
def test_does_has_diverged_follow_the_definition(losses, expected):
    assert reference.has_diverged(losses) is expected


def run(depth: int, bn: bool, lr: float, final: float, seed: int = 0) -> sweep.Run:
    return sweep.Run(depth, bn, lr, seed, [2.0, final], 0.5, 0.5)


def test_is_the_largest_stable_lr_the_largest_that_trains_for_every_seed():
    runs = [run(1, False, 0.1, 1.0), run(1, False, 1.0, 1.5), run(1, False, 10.0, float("nan")),
            run(2, False, 0.1, 1.0), run(2, False, 1.0, 1.0), run(2, False, 1.0, 3.0, seed=1),
            run(3, True, 0.1, 5.0)]
    assert sweep.largest_stable_lr(runs, reference.has_diverged) == {(False, 1): 1.0, (False, 2): 0.1, (True, 3): pytest.approx(math.nan, nan_ok=True)}


def test_does_the_loss_grid_average_seeds_and_mark_divergence():
    runs = [run(1, False, 0.1, 1.0), run(1, False, 0.1, 1.5, seed=1), run(4, False, 0.1, 3.0), run(1, True, 0.1, 0.2)]
    depths, lrs, loss, bad = sweep.final_loss_grid(runs, batchnorm=False, diverged=reference.has_diverged)
    assert depths == [1, 4] and lrs == [0.1]
    torch.testing.assert_close(loss, torch.tensor([[1.25], [3.0]], dtype=torch.float64))
    assert bad.tolist() == [[False], [True]]


def test_does_calibration_set_running_statistics_to_those_of_the_data():
    torch.manual_seed(0)
    model, X = mlp(5, 7, 2, 3, batchnorm=True).eval(), torch.randn(40, 5)
    sweep.calibrate_batchnorm(model, X)
    assert not model.training and all(bn.momentum == 0.1 for bn in model if isinstance(bn, torch.nn.BatchNorm1d))
    h = torch.relu(X @ model[0].weight.T + model[0].bias)  # the input of the first BatchNorm
    torch.testing.assert_close(model[2].running_mean, h.mean(0))
    torch.testing.assert_close(model[2].running_var, h.var(0, unbiased=True))


def test_does_train_model_return_the_model_that_train_one_describes(toy):
    X, y = toy
    model, run = sweep.train_model(X, y, 2, True, 0.1, seed=1, num_epochs=2, batch_size=16, width=8)
    assert run.losses == sweep.train_one(X, y, 2, True, 0.1, seed=1, num_epochs=2, batch_size=16, width=8).losses
    assert evaluate(model, X, y)[0] == pytest.approx(run.final_loss)


def _reference_epoch(model, optimizer, X, y, batch_size, generator):
    model.train()
    order = torch.randperm(len(X), generator=generator)
    for start in range(0, len(X), batch_size):
        idx = order[start:start + batch_size]
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
        optimizer.step()
    return 0.0


def test_does_train_with_reproduce_train_one_from_correct_pieces(toy):
    X, y = toy
    for batchnorm in (False, True):
        mine = sweep.train_with(mlp, evaluate, _reference_epoch, X, y, 3, batchnorm, 0.05, seed=2, num_epochs=2,
                                batch_size=16, width=8)
        want = sweep.train_one(X, y, 3, batchnorm, 0.05, seed=2, num_epochs=2, batch_size=16, width=8).losses
        torch.testing.assert_close(torch.tensor(mine), torch.tensor(want), rtol=1e-12, atol=1e-12)
