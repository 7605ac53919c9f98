"""Stacks of MLPs with a normalization passed in: forward, training, measurements, and the exercise's reference."""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_oracles.norm_ablation import normalize
from course_utils import norm_ablation as na


def _stack(kind="full", seeds=(0, 1, 2), **kwargs):
    return na.NormStack(normalize, kind, list(seeds), 5, 8, 3, 4, **kwargs)


def _sequential(stack, m):
    """Model m of a stack as torch layers: Linear -> BatchNorm1d (training mode) -> ReLU, for kinds full and none."""
    layers = []
    for i, (W, b) in enumerate(zip(stack.weights, stack.biases)):
        linear = nn.Linear(*W.shape[1:])
        with torch.no_grad():
            linear.weight.copy_(W[m].T)
            linear.bias.copy_(b[m, 0])
        layers.append(linear)
        if i < stack.depth:
            if stack.kind == "full":
                bn = nn.BatchNorm1d(W.shape[2])
                with torch.no_grad():
                    bn.weight.copy_(stack.gammas[i][m, 0])
                    bn.bias.copy_(stack.betas[i][m, 0])
                layers.append(bn)
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).train()


@pytest.mark.parametrize("kind", ["full", "none"])
def test_does_the_stack_compute_each_models_logits_as_torch_layers_do(kind):
    stack = _stack(kind)
    with torch.no_grad():
        for g in stack.gammas:
            g.uniform_(0.5, 2)
        for b in stack.biases:
            b.normal_()
    X = torch.randn(3, 16, 5)
    out = stack(X)
    assert out.shape == (3, 16, 4)
    for m in range(3):
        torch.testing.assert_close(out[m], _sequential(stack, m)(X[m]), rtol=1e-4, atol=1e-5)
    shared = stack(X[0])
    for m in range(3):
        torch.testing.assert_close(shared[m], _sequential(stack, m)(X[0]), rtol=1e-4, atol=1e-5)


def test_does_the_weight_scale_set_every_weights_standard_deviation_and_keep_the_draws():
    small = _stack(seeds=(0, 0), weight_scale=[1.0, 2.0])
    for W in small.weights:
        torch.testing.assert_close(W[1], 2 * W[0])
    big = na.NormStack(normalize, "none", [3], 50, 200, 2, 4, weight_scale=[0.3])
    assert abs(float(big.weights[1].detach().std()) - 0.3) < 0.01
    he = na.NormStack(normalize, "none", [3], 50, 200, 2, 4)
    assert abs(float(he.weights[1].detach().std()) - (2 / 200) ** 0.5) < 0.01


def test_are_bad_arguments_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="one weight scale per model"):
        _stack(weight_scale=[1.0])
    with pytest.raises(ValueError, match="at least one hidden layer"):
        na.NormStack(normalize, "full", [0], 5, 8, 0, 4)
    with pytest.raises(ValueError, match="noise"):
        _stack(noise=-1.0)


def _data(n=300, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=gen)
    return X, (X[:, 0] + X[:, 1] > 0).long() + 2 * (X[:, 2] > 0).long()


def test_does_train_stacks_train_each_model_as_sgd_with_momentum_alone():
    X, y = _data()
    stack = _stack("full", seeds=(0, 1))
    models = [_sequential(stack, m) for m in range(2)]
    rates = [0.01, 0.2]
    na.train_stacks({"s": stack}, X, y, X[:50], y[:50], num_epochs=2, lr=rates, batch_size=64, progress=False)
    gen = torch.Generator().manual_seed(0)
    orders = [torch.randperm(len(X), generator=gen) for _ in range(2)]
    for m, model in enumerate(models):
        opt = torch.optim.SGD(model.parameters(), lr=rates[m], momentum=0.9)
        for order in orders:
            for step in range(len(X) // 64):
                idx = order[step * 64:(step + 1) * 64]
                opt.zero_grad()
                F.cross_entropy(model(X[idx]), y[idx]).backward()
                opt.step()
        torch.testing.assert_close(stack.weights[0][m].T, model[0].weight, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(stack.gammas[1][m, 0], model[4].weight, rtol=1e-4, atol=1e-5)


def test_does_a_diverging_model_leave_the_others_alone_and_frozen_affine_stay_put():
    X, y = _data()
    alone, pair = _stack("none", seeds=(0,)), _stack("none", seeds=(0, 1))
    frozen = _stack("full", train_affine=False)
    with torch.no_grad():
        for W in pair.weights:
            W[1] = W[1] * 1e20  # model 1 overflows at once
    runs = na.train_stacks({"alone": alone, "pair": pair, "frozen": frozen}, X, y, X[:50], y[:50], 2, 0.1,
                           batch_size=64, progress=False)
    assert not torch.isfinite(runs["pair"].train_loss[:, 1]).any()
    torch.testing.assert_close(runs["pair"].train_loss[:, 0], runs["alone"].train_loss[:, 0])
    torch.testing.assert_close(pair.weights[0][0], alone.weights[0][0])
    assert all(bool((g == 1).all()) for g in frozen.gammas) and all(bool((b == 0).all()) for b in frozen.betas)
    assert not torch.equal(frozen.weights[0], _stack("full", train_affine=False).weights[0])  # the rest learns


def test_is_the_noise_redrawn_in_training_and_absent_in_evaluation():
    X, _ = _data(64)
    noisy = _stack(noise=0.5)
    noisy.noise_gen = torch.Generator().manual_seed(0)
    assert not torch.allclose(noisy(X), noisy(X))
    clean = copy.deepcopy(noisy)
    clean.noise = 0.0
    torch.testing.assert_close(noisy.eval()(X), clean.eval()(X))
    torch.testing.assert_close(clean.train()(X), clean.train()(X))


def test_does_input_shift_average_the_change_of_means_and_deviations_in_first_step_units():
    means = [torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 2.0]])]
    stds = [torch.full((1, 2), 2.0), torch.full((1, 2), 2.0), torch.tensor([[4.0, 2.0]])]
    # changes: step 1 (1 + 0 + 0 + 0) / 2 units, step 2 (0 + 2 + 2 + 0) / 2 units -> mean 1.25, over sd 2
    torch.testing.assert_close(na.input_shift(list(zip(means, stds))), torch.tensor([0.625]))


def test_are_the_recorded_layer_inputs_those_of_the_requested_layer():
    X, y = _data(128)
    stack = _stack("none", seeds=(0,))
    measure = lambda name, s: (na.loss(s, X, y), na.gradient_predictiveness(s, X, y, [0.1]))  # must record nothing
    runs = na.train_stacks({"s": stack}, X, y, X, y, 1, 0.0, batch_size=64, record_layer=0, after_epoch=measure,
                           progress=False)
    # lr 0: the data's own statistics on the two batches of a fixed permutation
    order = torch.randperm(128, generator=torch.Generator().manual_seed(0))
    stats = [(X[order[i:i + 64]].mean(0), X[order[i:i + 64]].std(0, unbiased=False)) for i in (0, 64)]
    want = ((stats[1][0] - stats[0][0]).abs() + (stats[1][1] - stats[0][1]).abs()).mean() / stats[0][1].mean()
    torch.testing.assert_close(runs["s"].input_shift, want.view(1), rtol=1e-5, atol=1e-6)
    assert stack.recorded == [] and stack.record_layer is None


def test_does_gradient_predictiveness_measure_the_change_along_the_gradient_and_restore_the_stack():
    X, y = _data(64)
    stack = _stack("full", seeds=(0, 1), noise=0.5)
    before = copy.deepcopy(stack.state_dict())
    change, beta = na.gradient_predictiveness(stack.eval(), X, y, [0.1, 0.5])
    assert stack.noise == 0.5 and not stack.training
    for key, value in stack.state_dict().items():
        torch.testing.assert_close(value, before[key])
    model = _sequential(stack, 1)
    params = list(model.parameters())
    g0 = torch.autograd.grad(F.cross_entropy(model(X), y), params)
    norm = torch.sqrt(sum((g**2).sum() for g in g0))
    want_change, want_beta = 0.0, 0.0
    for eta in (0.1, 0.5):
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for p, g in zip(moved.parameters(), g0):
                p -= eta * g
        g1 = torch.autograd.grad(F.cross_entropy(moved(X), y), list(moved.parameters()))
        diff = float(torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(g1, g0))))
        want_change, want_beta = max(want_change, diff / float(norm)), max(want_beta, diff / (eta * float(norm)))
    assert change.shape == beta.shape == (2,)
    assert abs(float(change[1]) - want_change) < 1e-3 * want_change
    assert abs(float(beta[1]) - want_beta) < 1e-3 * want_beta


def test_do_accuracy_and_loss_normalize_with_the_whole_set_without_noise_and_restore_the_mode():
    X, y = _data(100)
    stack = _stack("full", noise=0.5).train()
    acc, loss = na.accuracy(stack, X, y), na.loss(stack, X, y)
    assert stack.training and acc.shape == loss.shape == (3,)
    for m in range(3):
        logits = _sequential(stack, m)(X)
        torch.testing.assert_close(acc[m], (logits.argmax(1) == y).float().mean())
        torch.testing.assert_close(loss[m], F.cross_entropy(logits, y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(6, 3), (2, 5, 4), (2, 3, 7, 2)])
def test_does_the_reference_normalization_match_batchnorm_and_its_halves(shape):
    h = torch.randn(shape, dtype=torch.float64) * 3 + 2
    flat = h.reshape(-1, *h.shape[-2:])
    full = torch.stack([F.batch_norm(x, None, None, training=True, eps=1e-3) for x in flat]).reshape(shape)
    torch.testing.assert_close(normalize(h, "full", 1e-3), full)
    torch.testing.assert_close(normalize(h, "mean"), h - h.mean(-2, keepdim=True))
    sd = torch.sqrt(h.var(-2, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(normalize(h, "variance"), h / sd)
    assert normalize(h, "none") is h
    with pytest.raises(ValueError):
        normalize(h[..., :1, :], "full")
    with pytest.raises(ValueError):
        normalize(h, "layer")
