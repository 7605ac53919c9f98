"""Tests for course_utils.interventions: the stacked variants against networks trained one at a time."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_utils import interventions, sweep
from course_utils.models import mlp
from course_utils.train import batch_mode_loss


@pytest.fixture(scope="module")
def toy() -> tuple[torch.Tensor, torch.Tensor]:
    """90 points in 12 dimensions with 10 classes, in float64 so both paths agree to rounding."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(90, 12, generator=gen, dtype=torch.float64)
    return X, torch.randint(0, 10, (90,), generator=gen)


class Residual(nn.Module):
    """The oracle: one residual network written with nn modules, from the sweep's initial weights for `seed`."""

    def __init__(self, in_features: int, width: int, depth: int, placement: str, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        linears = [m for m in mlp(in_features, width, depth, 10, batchnorm=True) if isinstance(m, nn.Linear)]
        self.linears = nn.ModuleList(linears)
        self.norms = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(depth - 1))
        self.placement = placement

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        h = self.linears[0](X)
        for linear, norm in zip(self.linears[1:-1], self.norms):
            if self.placement == "stream":
                h = norm(h)
                h = h + linear(torch.relu(h))
            else:
                h = h + linear(torch.relu(norm(h)))
        return self.linears[-1](h)


def groups_of(model: nn.Module) -> list[list[nn.Parameter]]:
    """One parameter group per layer: each Linear's (W, b) and each BatchNorm's (weight, bias)."""
    return [[m.weight, m.bias] for m in model.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d))]


def train_by_hand(model, X, y, lr, seed, optimizer, num_epochs, batch_size=32):
    """One network trained with the sweep's batch orders, by autograd, plain or layer-wise steps; eval-mode losses."""
    sweep.calibrate_batchnorm(model, X)
    losses = []
    for epoch in range(num_epochs + 1):
        model.eval()
        with torch.no_grad():
            losses.append(F.cross_entropy(model(X), y).item())
        model.train()
        if epoch == num_epochs:
            return losses
        order = torch.randperm(len(X), generator=torch.Generator().manual_seed(sweep.epoch_seed(seed, epoch)))
        for begin in range(0, len(X), batch_size):
            idx = order[begin:begin + batch_size]
            if len(idx) < 2:
                continue
            model.zero_grad()
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            with torch.no_grad():
                for group in groups_of(model):
                    scale = lr
                    if optimizer == "lars":
                        theta = math.sqrt(sum(p.pow(2).sum().item() for p in group))
                        scale = lr * theta / math.sqrt(sum(p.grad.pow(2).sum().item() for p in group))
                    for p in group:
                        p -= scale * p.grad


@pytest.mark.parametrize("variant, optimizer", [("mlp", "lars"), ("branch", "sgd"), ("stream", "sgd"),
                                                ("branch", "lars")])
def test_does_the_stack_give_the_losses_of_networks_trained_one_at_a_time(toy, variant, optimizer):
    X, y = toy
    lrs, seeds = [0.05, 0.2], (0, 1)
    runs = interventions.train_variant(X, y, variant, 3, lrs, seeds, optimizer, num_epochs=2, batch_size=16,
                                        width=8, X_test=X[:40], y_test=y[:40], progress=False)
    assert [(r.variant, r.lr, r.seed) for r in runs] == [(variant, lr, s) for lr in lrs for s in seeds]
    for run in runs:
        if variant == "mlp":
            torch.manual_seed(run.seed)
            model = mlp(12, 8, 3, 10, batchnorm=True).double()
        else:
            model = Residual(12, 8, 3, variant, run.seed).double()
        initial = [math.sqrt(m.weight.pow(2).sum().item() + m.bias.pow(2).sum().item())
                   for m in model.modules() if isinstance(m, nn.Linear)]
        want = train_by_hand(model, X, y, run.lr, run.seed, optimizer, 2, batch_size=16)
        torch.testing.assert_close(torch.tensor(run.losses), torch.tensor(want), rtol=1e-9, atol=1e-12)
        model.eval()
        with torch.no_grad():
            assert run.train_acc == pytest.approx((model(X).argmax(1) == y).double().mean().item())
            assert run.test_acc == pytest.approx((model(X[:40]).argmax(1) == y[:40]).double().mean().item())
        assert run.batch_acc == pytest.approx(batch_mode_loss(model, X, y, batch_size=16)[1])
        final = [math.sqrt(m.weight.pow(2).sum().item() + m.bias.pow(2).sum().item())
                 for m in model.modules() if isinstance(m, nn.Linear)]
        assert run.growth == pytest.approx([f / i for f, i in zip(final, initial)], rel=1e-9)
    assert runs[0].losses != runs[1].losses, "seeds 0 and 1 should give different networks"


def test_does_the_sgd_stack_of_the_sweeps_network_reproduce_the_sweep(toy):
    X, y = toy
    runs = interventions.train_variant(X, y, "mlp", 2, [0.1], (0, 1), "sgd", num_epochs=2, batch_size=16, width=8,
                                        progress=False)
    for run in runs:
        want = sweep.train_one(X, y, 2, True, 0.1, run.seed, num_epochs=2, batch_size=16, width=8)
        torch.testing.assert_close(torch.tensor(run.losses), torch.tensor(want.losses), rtol=1e-9, atol=1e-12)


def test_do_layer_wise_steps_grow_every_scale_invariant_layer_by_the_same_factor(toy):
    X, y = toy
    (run,) = interventions.train_variant(X, y, "mlp", 4, [0.1], (0,), "lars", num_epochs=2, batch_size=30,
                                          width=8, progress=False)
    steps = 2 * 3  # batches of 30 out of 90, two epochs
    # exact but for BatchNorm's epsilon, which breaks scale invariance where a unit's variance is small
    assert run.growth[:-1] == pytest.approx([(1 + 0.1**2) ** (steps / 2)] * 4, rel=1e-4)
    assert run.growth[-1] != pytest.approx(run.growth[0], rel=1e-3), "the head is not scale-invariant"


def test_are_networks_that_blow_up_stopped_while_the_others_train_on(toy):
    X, y = toy
    runs = interventions.train_variant(X.float(), y, "branch", 3, [0.01, 1e6], (0,), num_epochs=3, batch_size=10,
                                        width=8, X_test=X[:20].float(), y_test=y[:20], progress=False)
    assert len(runs[0].losses) == 4 and all(math.isfinite(v) for v in runs[0].losses + [runs[0].test_acc])
    assert len(runs[1].losses) < 4 and not math.isfinite(runs[1].final_loss)
    assert math.isnan(interventions.train_variant(X, y, "mlp", 1, [0.1], (0,), num_epochs=1, width=8,
                                                   progress=False)[0].test_acc)


def test_does_the_stack_leave_the_global_generator_and_the_data_alone(toy):
    X, y = toy
    X0, y0 = X.clone(), y.clone()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    interventions.train_variant(X, y, "stream", 2, [0.1], (0,), num_epochs=1, width=8, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(X, X0) and torch.equal(y, y0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(variant="resnet", depth=3), "variant must be"),
    (dict(variant="branch", depth=1), "at least 2 hidden layers"),
    (dict(variant="mlp", depth=0), "at least 1 hidden layers"),
    (dict(variant="mlp", depth=2, seeds=()), "at least one network"),
    (dict(variant="mlp", depth=2, optimizer="adam"), "optimizer must be"),
    (dict(variant="mlp", depth=2, batch_size=1), "batches of at least 2"),
])
def test_does_bad_input_raise_a_clear_error(toy, kwargs, message):
    X, y = toy
    with pytest.raises(ValueError, match=message):
        interventions.train_variant(X, y, lrs=[0.1], progress=False, **kwargs)
