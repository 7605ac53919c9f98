"""Stacked MLPs: one module that evaluates and trains several same-shaped MLPs as the per-model code would."""

import copy

import pytest
import torch

from course_oracles.train import evaluate
from course_utils import models, spheres, stacked, train


def _models(batchnorm, seeds=(0, 1, 2), depth=3, width=8):
    return stacked.seeded_models(seeds, 5, width, depth, 2, batchnorm=batchnorm, norm_position="before_relu")


@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_does_the_stack_compute_each_models_logits(batchnorm, training):
    nets = _models(batchnorm)
    stack = stacked.StackedMLP(nets).train(training)
    X = torch.randn(3, 16, 5)
    out = stack(X)
    assert out.shape == (3, 16, 2)
    for m, net in enumerate(nets):
        torch.testing.assert_close(out[m], net.train(training)(X[m]), rtol=1e-5, atol=1e-6)
    shared = stack(X[0])  # one batch for every model
    for m, net in enumerate(nets):
        torch.testing.assert_close(shared[m], net(X[0]), rtol=1e-5, atol=1e-6)


def test_does_a_training_forward_update_each_models_running_statistics():
    nets = _models(True)
    stack = stacked.StackedMLP(copy.deepcopy(nets)).train()
    X = torch.randn(3, 32, 5)
    stack(X)
    for m, net in enumerate(nets):
        net.train()(X[m])
        twin = stack.unstack(m)
        for a, b in zip(net.modules(), twin.modules()):
            if isinstance(a, torch.nn.BatchNorm1d):
                torch.testing.assert_close(a.running_mean, b.running_mean)
                torch.testing.assert_close(a.running_var, b.running_var)


@pytest.mark.parametrize("batchnorm, weight_decay", [(False, 0.0), (True, 0.0), (False, 0.05), (True, 0.05)])
def test_does_fit_stacked_train_each_model_as_fit_does(batchnorm, weight_decay):
    X, y = spheres.concentric_spheres(301, 5, seed=0)  # 301: the last batch of one is skipped with BatchNorm
    nets = _models(batchnorm)
    reference = copy.deepcopy(nets)
    stack = stacked.StackedMLP(nets)
    losses = stacked.fit_stacked(stack, X, y, 3, 1e-2, seeds=[0, 1, 2], batch_size=50, progress=False,
                                 weight_decay=weight_decay)
    assert losses.shape == (3, 3)
    for m, net in enumerate(reference):
        want = train.fit(net, X, y, 3, lr=1e-2, batch_size=50, optimizer="adam", seed=m, progress=False,
                         weight_decay=weight_decay)
        torch.testing.assert_close(losses[:, m].double(), torch.tensor(want, dtype=torch.float64), rtol=1e-4, atol=1e-5)
        # Biases ahead of a BatchNorm get a zero gradient up to round-off, which Adam turns into steps of size lr:
        # they drift apart, as do the running means that follow them, without changing the function in
        # training mode. Compare that function, and every other parameter and buffer.
        twin = stack.unstack(m)
        torch.testing.assert_close(twin.train()(X), net.train()(X), rtol=1e-4, atol=1e-5)
        drifting = {f"{i}.bias" for i, layer in enumerate(net) if batchnorm and isinstance(layer, torch.nn.Linear)
                    and i + 1 < len(net)} | {k for k in net.state_dict() if k.endswith("running_mean")}
        for key, value in net.state_dict().items():
            if key not in drifting and value.is_floating_point():
                torch.testing.assert_close(twin.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_does_unstack_give_back_the_models_it_was_built_from():
    nets = _models(True)
    stack = stacked.StackedMLP(nets)
    for m, net in enumerate(nets):
        twin = stack.unstack(m)
        assert [type(a) for a in twin] == [type(b) for b in net]
        for (ka, a), (kb, b) in zip(twin.state_dict().items(), net.state_dict().items()):
            assert ka == kb and torch.equal(a, b)


def test_does_flattened_send_each_block_of_rows_to_its_model():
    nets = _models(True)
    stack = stacked.StackedMLP(nets).eval()
    flat = stacked.Flattened(stack)
    X = torch.randn(3 * 7, 5)
    out = flat(X)
    for m, net in enumerate(nets):
        torch.testing.assert_close(out[7 * m:7 * (m + 1)], net.eval()(X[7 * m:7 * (m + 1)]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        flat(torch.randn(8, 5))


def test_does_evaluate_stacked_give_each_accuracy_and_restore_the_mode():
    X, y = spheres.concentric_spheres(200, 5, seed=1)
    nets = _models(True)
    stack = stacked.StackedMLP(nets).train()
    acc = stacked.evaluate_stacked(stack, X, y, chunk=64)
    assert stack.training
    for m, net in enumerate(nets):
        assert acc[m].item() == pytest.approx(evaluate(net, X, y)[1], abs=1e-6)


def test_does_seeded_models_match_manual_seeding_and_leave_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    nets = stacked.seeded_models([4, 5], 5, 8, 2, 2)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(5)
    want = models.mlp(5, 8, 2, 2)
    for a, b in zip(nets[1].state_dict().values(), want.state_dict().values()):
        assert torch.equal(a, b)


def test_does_the_stack_refuse_models_of_different_shapes():
    with pytest.raises(ValueError):
        stacked.StackedMLP([models.mlp(5, 8, 2, 2), models.mlp(5, 8, 3, 2)])
    with pytest.raises(ValueError):
        stacked.StackedMLP([models.mlp(5, 8, 2, 2), models.mlp(5, 8, 2, 2, batchnorm=True)])
