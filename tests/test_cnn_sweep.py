"""Tests for course_utils.cnn_sweep: the stacked CNNs against the one-model-at-a-time reference, and the sweep's bookkeeping."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_utils import cnn_sweep

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def toy() -> tuple[torch.Tensor, ...]:
    """60 training and 25 test images of 12x12 with 10 classes, in float64 so both paths agree to rounding."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(60, 1, 12, 12, generator=gen, dtype=torch.float64)
    X_test = torch.randn(25, 1, 12, 12, generator=gen, dtype=torch.float64)
    return X, torch.randint(0, 10, (60,), generator=gen), X_test, torch.randint(0, 10, (25,), generator=gen)


def test_does_small_cnn_normalize_as_named():
    for norm, kind in [("batch", nn.BatchNorm2d), ("group", nn.GroupNorm), ("layer", nn.GroupNorm)]:
        model = cnn_sweep.small_cnn(norm)
        norms = [m for m in model if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
        assert len(norms) == len(cnn_sweep.WIDTHS) and all(type(m) is kind for m in norms)
        assert all(c.bias is None for c in model if isinstance(c, nn.Conv2d)), "a normalization removes the conv's bias"
        assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert [m.num_groups for m in cnn_sweep.small_cnn("layer") if isinstance(m, nn.GroupNorm)] == [1, 1]
    with pytest.raises(ValueError, match="unknown normalization"):
        cnn_sweep.small_cnn("instance")


@pytest.mark.parametrize("mode", ["train", "batch", "eval"])
def test_does_the_stack_compute_what_each_model_computes(mode):
    """Mixed normalizations, interleaved so that the stack has several segments, per-model inputs."""
    gen = torch.Generator().manual_seed(1)
    norms = ["batch", "group", "group", "layer", "batch"]
    models = []
    for i, norm in enumerate(norms):
        torch.manual_seed(i)
        model = cnn_sweep.small_cnn(norm, image_size=12).double()
        with torch.no_grad():  # non-default affine parameters and running statistics, so that mixing them up shows
            for m in model.modules():
                if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                    m.weight.uniform_(0.5, 2.0, generator=gen), m.bias.uniform_(-1.0, 1.0, generator=gen)
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-1.0, 1.0, generator=gen), m.running_var.uniform_(0.5, 2.0, generator=gen)
        models.append(model)
    stack = cnn_sweep.StackedCNNs(models)
    assert len(stack.segments) == 4
    X = torch.randn(6, len(norms), 12, 12, generator=gen, dtype=torch.float64)
    got = stack.forward(X, mode)
    for m, model in enumerate(models):
        model.train(mode != "eval")
        before = [b.clone() for b in model.buffers()]
        want = model(X[:, m:m + 1])
        if mode == "batch":
            for b, old in zip(model.buffers(), before):
                b.copy_(old)
        torch.testing.assert_close(got[m], want, rtol=1e-10, atol=1e-12)
    for i in range(len(stack.widths)):
        C = stack.widths[i]
        for m, model in enumerate(models):
            norm = [n for n in model if isinstance(n, (nn.BatchNorm2d, nn.GroupNorm))][i]
            if isinstance(norm, nn.BatchNorm2d):
                torch.testing.assert_close(stack.running_means[i][m * C:(m + 1) * C], norm.running_mean)
                torch.testing.assert_close(stack.running_vars[i][m * C:(m + 1) * C], norm.running_var)


def test_does_a_shared_input_reach_every_model():
    models = [cnn_sweep.small_cnn(n, image_size=12) for n in ("batch", "layer")]
    stack = cnn_sweep.StackedCNNs(models)
    X = torch.randn(4, 1, 12, 12)
    got = stack.forward(X, "eval")
    for m, model in enumerate(models):
        torch.testing.assert_close(got[m], model.eval()(X), rtol=1e-5, atol=1e-6)


def test_does_an_sgd_step_of_the_stack_match_torch_sgd_per_model():
    gen = torch.Generator().manual_seed(2)
    models = []
    for i, norm in enumerate(["batch", "group", "layer"]):
        torch.manual_seed(10 + i)
        models.append(cnn_sweep.small_cnn(norm, image_size=12).double())
    stack = cnn_sweep.StackedCNNs(models)
    X = torch.randn(5, 3, 12, 12, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (3, 5), generator=gen)
    losses = stack.sgd_step(X, y, lr=0.3, weight_decay=0.05)
    for m, model in enumerate(models):
        opt = torch.optim.SGD(model.parameters(), lr=0.3, weight_decay=0.05)
        model.train()
        loss = F.cross_entropy(model(X[:, m:m + 1]), y[m])
        loss.backward()
        opt.step()
        assert losses[m].item() == pytest.approx(loss.item(), rel=1e-12)
        convs = [c for c in model if isinstance(c, nn.Conv2d)]
        for i, conv in enumerate(convs):
            C = conv.out_channels
            torch.testing.assert_close(stack.weights[i][m * C:(m + 1) * C], conv.weight.detach(), rtol=1e-10, atol=1e-12)
        head = model[-1]
        torch.testing.assert_close(stack.head_weight[m], head.weight.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(stack.head_bias[m], head.bias.detach(), rtol=1e-10, atol=1e-12)


def test_does_the_vectorized_sweep_give_the_results_of_the_per_model_loop(toy):
    X, y, X_test, y_test = toy
    args = dict(batch_sizes=[2, 8], seeds=(0, 1), num_epochs=2, lr=0.3, progress=False, image_size=12)
    fast = cnn_sweep.batch_size_sweep(X, y, X_test, y_test, vectorized=True, **args)
    slow = cnn_sweep.batch_size_sweep(X, y, X_test, y_test, vectorized=False, **args)
    key = lambda r: (r.batch_size, r.norm, r.seed, r.lr)
    assert [key(r) for r in fast] == [key(r) for r in slow] == [
        (b, n, s, 0.3 * b / 32) for b in (2, 8) for n in cnn_sweep.NORMS for s in (0, 1)]
    for a, b in zip(fast, slow):
        torch.testing.assert_close(torch.tensor(a.losses), torch.tensor(b.losses), rtol=1e-9, atol=1e-12)
        assert (a.train_acc, a.test_acc, a.test_acc_batch, a.test_acc_population) == pytest.approx(
            (b.train_acc, b.test_acc, b.test_acc_batch, b.test_acc_population))
        assert len(a.losses) == 2
    assert fast[0].losses != fast[1].losses, "seeds 0 and 1 should give different networks"
    for r in fast:
        if r.norm != "batch":
            assert r.test_acc_batch == r.test_acc == r.test_acc_population and r.mode_gap == 0.0


def test_does_the_vectorized_sweep_of_mlps_give_the_results_of_the_per_model_loop():
    """1x1 kernels on 1x1 maps of 5 features: an MLP with BatchNorm1d, several input channels per model."""
    gen = torch.Generator().manual_seed(3)
    X, X_test = (torch.randn(n, 5, 1, 1, generator=gen, dtype=torch.float64) for n in (48, 20))
    y, y_test = torch.randint(0, 10, (48,), generator=gen), torch.randint(0, 10, (20,), generator=gen)
    args = dict(batch_sizes=[2, 8], norms=("batch", "layer"), seeds=(0, 1), num_epochs=2, lr=0.3, progress=False,
                widths=(8, 8), strides=(1, 1), kernel_size=1, in_channels=5, image_size=1)
    fast = cnn_sweep.batch_size_sweep(X, y, X_test, y_test, vectorized=True, **args)
    slow = cnn_sweep.batch_size_sweep(X, y, X_test, y_test, vectorized=False, **args)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(torch.tensor(a.losses), torch.tensor(b.losses), rtol=1e-9, atol=1e-12)
        assert (a.train_acc, a.test_acc, a.test_acc_batch, a.test_acc_population) == pytest.approx(
            (b.train_acc, b.test_acc, b.test_acc_batch, b.test_acc_population))
    assert len({r.test_acc_population for r in fast if r.norm == "batch"}) > 1


def test_is_a_one_by_one_small_cnn_an_mlp():
    torch.manual_seed(0)
    model = cnn_sweep.small_cnn("batch", widths=(6, 4), strides=(1, 1), kernel_size=1, in_channels=5, image_size=1)
    X = torch.randn(7, 5)
    h = X
    for conv, norm in [(model[0], model[1]), (model[3], model[4])]:
        h = torch.relu(F.batch_norm(h @ conv.weight.flatten(1).T, None, None, norm.weight, norm.bias, True))
    torch.testing.assert_close(model(X.view(7, 5, 1, 1)), model[-1](h))
    with pytest.raises(ValueError, match="odd"):
        cnn_sweep.small_cnn("batch", kernel_size=2)


def test_does_population_accuracy_use_the_statistics_of_the_whole_set_and_leave_the_model_alone():
    torch.manual_seed(0)
    model = cnn_sweep.small_cnn("batch", image_size=12).double()
    X = torch.randn(40, 1, 12, 12, dtype=torch.float64) * 3 + 2  # far from the fresh running estimates (0, 1)
    with torch.no_grad():
        labels = model.train()(X).argmax(1)  # what the model predicts with the statistics of all of X
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert cnn_sweep.population_accuracy(model, X, X, labels) == 1.0
    assert cnn_sweep.accuracy(model, X, labels) < 1.0, "the fresh running estimates should give other predictions"
    assert not model.training and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    stack = cnn_sweep.StackedCNNs([model, model])
    means = [m.clone() for m in stack.running_means]
    assert stack.population_accuracy(X, X, labels).tolist() == [1.0, 1.0]
    assert all(torch.equal(a, b) for a, b in zip(stack.running_means, means))


def test_does_training_learn_something(toy):
    X, y, X_test, y_test = toy
    X, y = X[:40], torch.arange(40) % 2  # two classes that differ in brightness
    X = X + 3 * y.view(-1, 1, 1, 1)
    runs = cnn_sweep.batch_size_sweep(X, y, X, y, [8], norms=["batch", "group"], seeds=[0], num_epochs=4, lr=0.5,
                                      progress=False, image_size=12)
    for r in runs:
        assert r.losses[-1] < r.losses[0] and r.train_acc > 0.9


def test_do_batches_cover_each_example_at_most_once():
    rows = cnn_sweep.batches(23, 5, seed=3, epoch=1)
    assert rows.shape == (4, 5)
    assert len(set(rows.flatten().tolist())) == 20
    assert torch.equal(rows, cnn_sweep.batches(23, 5, seed=3, epoch=1))
    assert not torch.equal(rows, cnn_sweep.batches(23, 5, seed=3, epoch=2))


def test_does_accuracy_with_batch_statistics_leave_the_model_alone():
    torch.manual_seed(0)
    model = cnn_sweep.small_cnn("batch", image_size=12).eval()
    X, y = torch.randn(20, 1, 12, 12), torch.randint(0, 10, (20,))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cnn_sweep.accuracy(model, X, y, batch_size=4)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed"
    with torch.no_grad():
        model.train()
        want = sum((model(X[i:i + 4]).argmax(1) == y[i:i + 4]).sum().item() for i in range(0, 20, 4)) / 20
    model.load_state_dict(state)
    assert cnn_sweep.accuracy(model.eval(), X, y, batch_size=4) == pytest.approx(want)


def test_does_the_summary_give_mean_spread_and_range():
    runs = [cnn_sweep.CNNRun("batch", 4, s, 0.1, [1.0], 0.9, acc, acc, acc) for s, acc in enumerate([0.5, 0.7, 0.6])]
    runs.append(cnn_sweep.CNNRun("group", 4, 0, 0.1, [1.0], 0.9, 0.8, 0.8, 0.8))
    summary = cnn_sweep.summary(runs, "test_acc")
    assert summary["batch", 4] == pytest.approx((0.6, 0.1, 0.5, 0.7))
    assert summary["group", 4][0] == 0.8 and math.isnan(summary["group", 4][1])


def test_does_the_plot_draw_every_norm(toy):
    runs = [cnn_sweep.CNNRun(n, b, s, 0.1, [1.0], 0.9, 0.8 + 0.01 * s, 0.81, 0.8) for n in cnn_sweep.NORMS for b in (2, 8)
            for s in (0, 1)]
    fig, axes = cnn_sweep.plot_batch_size_sweep(runs)
    assert len(axes) == 2 and len(axes[0].get_lines()) == 4  # three norms and BatchNorm with batch statistics
    assert len(axes[1].get_lines()) == 2  # the zero line and the mean gap
