"""Stacked small conv nets for fine-tuning: independent models, BatchNorm's modes, accuracies and re-estimated statistics."""

import copy

import pytest
import torch

from course_utils import finetune


def _images(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 5, (n,), generator=gen)


def test_is_each_output_channels_weight_standardized():
    w = 3 + 2 * torch.randn(6, 4, 3, 3)
    got = finetune.standardize_weight(w).reshape(6, -1)
    torch.testing.assert_close(got.mean(dim=1), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(got.var(dim=1, correction=0), torch.ones(6), atol=1e-4, rtol=0)


@pytest.mark.parametrize("norm", ["bn", "gn_ws"])
def test_does_each_model_see_only_its_own_images_and_gradients(norm):
    net = finetune.StackedConvNet(3, norm, width=8).train()
    X = torch.randn(4, 3, 28, 28)
    out = net(X)
    assert out.shape == (4, 3, 5)
    X2 = X.clone()
    X2[:, 1] = torch.randn(4, 28, 28)
    out2 = net(X2)
    torch.testing.assert_close(out2[:, [0, 2]], out[:, [0, 2]])
    assert not torch.allclose(out2[:, 1], out[:, 1])
    net.zero_grad()
    net(X)[:, 0].sum().backward()
    assert net.head_weight.grad[1:].abs().max() == 0
    assert net.convs[0].weight.grad[8:].abs().max() == 0 and net.convs[0].weight.grad[:8].abs().max() > 0


def test_are_the_models_different_draws_and_reproducible_from_the_seed():
    a, b = finetune.StackedConvNet(2, "bn", seed=1), finetune.StackedConvNet(2, "bn", seed=1)
    torch.testing.assert_close(a.convs[1].weight, b.convs[1].weight)
    w = a.convs[1].weight
    assert not torch.allclose(w[: len(w) // 2], w[len(w) // 2:])


def test_does_weight_standardization_and_groupnorm_make_outputs_independent_of_the_batch_and_the_weight_scale():
    net = finetune.StackedConvNet(2, "gn_ws", width=8).train()
    X, _ = _images(6)
    torch.testing.assert_close(net(X)[:2], net(X[:2]))
    before = net(X)
    with torch.no_grad():
        net.convs[1].weight[3].mul_(7.0)  # one output channel: GroupNorm alone would not undo it
    torch.testing.assert_close(net(X), before, rtol=1e-3, atol=1e-3)
    net.convs[1].standardize = False
    assert not torch.allclose(net(X), before, rtol=1e-3, atol=1e-3)


def test_do_frozen_statistics_stay_put_while_the_affine_parameters_train():
    net = finetune.StackedConvNet(2, "bn", width=8)
    X, y = _images(16)
    bn = net.batchnorms()[0]
    mean, gamma = bn.running_mean.clone(), bn.weight.detach().clone()
    finetune.fit(net, X, y, batch_size=4, epochs=1, lr=0.1)
    assert not torch.equal(bn.running_mean, mean), "batch statistics update the running estimates"
    mean = bn.running_mean.clone()
    finetune.fit(net, X, y, batch_size=4, epochs=1, lr=0.1, statistics="frozen")
    torch.testing.assert_close(bn.running_mean, mean, rtol=0, atol=0)
    assert not torch.allclose(bn.weight, gamma)
    assert net.training and not bn.training
    with pytest.raises(ValueError, match="statistics"):
        net.use_statistics("running")


def test_does_fit_lower_the_loss_of_every_model_on_a_small_set():
    X, y = _images(8)
    net = finetune.StackedConvNet(2, "gn_ws", width=8)
    losses = finetune.fit(net, X, y, batch_size=4, epochs=30, lr=0.05)
    assert len(losses) == 60
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4
    assert (finetune.accuracy(net, X, y) == 1).all()


def test_do_the_batches_shuffle_each_model_and_epoch_on_its_own():
    idx = finetune.per_model_batches(10, 3, num_models=2, epochs=2, seed=0)
    assert idx.shape == (6, 3, 2)
    for m in range(2):
        for epoch in range(2):
            seen = idx[3 * epoch:3 * epoch + 3, :, m].reshape(-1)
            assert len(set(seen.tolist())) == 9
    assert not torch.equal(idx[:, :, 0], idx[:, :, 1])


def test_do_accuracies_in_either_mode_leave_the_network_as_it_was():
    net = finetune.StackedConvNet(2, "bn", width=8)
    X, y = _images(10)
    finetune.fit(net, X, y, batch_size=5, epochs=2, lr=0.1)
    net.eval()
    state = copy.deepcopy(net.state_dict())
    for size in (None, 2, 4):
        acc = finetune.accuracy(net, X, y, batch_size=size)
        assert acc.shape == (2,) and ((acc >= 0) & (acc <= 1)).all()
    assert not net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
    logits = net(X)  # eval mode: the accuracy counts argmax hits
    torch.testing.assert_close(finetune.accuracy(net, X, y), (logits.argmax(2) == y[:, None]).float().mean(0))
    gn = finetune.StackedConvNet(2, "gn_ws", width=8)
    torch.testing.assert_close(finetune.accuracy(gn, X, y), finetune.accuracy(gn, X, y, batch_size=5))


def test_are_reestimated_statistics_the_averages_of_the_batches_statistics():
    net = finetune.StackedConvNet(2, "bn", width=8)
    X, _ = _images(40)
    before = copy.deepcopy(net.state_dict())
    re = finetune.reestimate_statistics(net, X, batch_size=10)
    assert not re.training
    features = net.convs[0](X.expand(-1, 2, -1, -1))
    torch.testing.assert_close(re.batchnorms()[0].running_mean, features.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    batch_vars = torch.stack([features[i:i + 10].var(dim=(0, 2, 3)) for i in range(0, 40, 10)])
    torch.testing.assert_close(re.batchnorms()[0].running_var, batch_vars.mean(0), rtol=1e-4, atol=1e-5)
    assert re.batchnorms()[0].momentum == net.batchnorms()[0].momentum
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_is_bad_input_refused():
    with pytest.raises(ValueError, match="norm"):
        finetune.StackedConvNet(2, "ln")
    with pytest.raises(ValueError, match="width"):
        finetune.StackedConvNet(2, "gn_ws", width=10)
    with pytest.raises(ValueError, match="images"):
        finetune.StackedConvNet(2, "bn")(torch.randn(4, 3, 28, 28))


def test_does_a_new_head_keep_the_body_and_leave_the_original_alone():
    net = finetune.StackedConvNet(2, "bn", width=8, seed=3)
    head = net.head_weight.detach().clone()
    new = finetune.with_new_head(net, seed=5)
    torch.testing.assert_close(new.convs[2].weight, net.convs[2].weight)
    torch.testing.assert_close(new.head_weight, finetune.StackedConvNet(2, "bn", width=8, seed=5).head_weight)
    assert not torch.allclose(new.head_weight, head)
    torch.testing.assert_close(net.head_weight, head, rtol=0, atol=0)
