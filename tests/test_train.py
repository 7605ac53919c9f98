"""Do the shared training and evaluation loops learn, and leave the model's mode as they found it?"""

import copy

import torch

from course_oracles import train as reference
from course_utils import models, train


def _blobs(n=400, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    centers = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    return centers[y] + 0.5 * torch.randn(n, 2, generator=gen), y


def test_fit_learns_separable_blobs_with_both_optimizers():
    """Does fit reach high accuracy on three well-separated blobs, with and without BatchNorm?"""
    X, y = _blobs()
    for batchnorm, optimizer, lr in [(False, "sgd", 0.1), (True, "adam", 0.01)]:
        torch.manual_seed(0)
        model = models.mlp(2, 16, 2, 3, batchnorm=batchnorm)
        losses = train.fit(model, X, y, num_epochs=15, lr=lr, batch_size=32, optimizer=optimizer, progress=False)
        assert losses[-1] < losses[0]
        assert reference.evaluate(model, X, y)[1] > 0.95


def test_does_fit_add_weight_decay_times_each_parameter_to_its_gradient():
    """One full-batch SGD step with weight_decay moves each parameter by -lr (its gradient + weight_decay * itself)?"""
    X, y = _blobs(40)
    torch.manual_seed(0)
    model = models.mlp(2, 8, 2, 3)
    start = copy.deepcopy(model)
    torch.nn.functional.cross_entropy(start(X), y).backward()
    train.fit(model, X, y, num_epochs=1, lr=0.1, batch_size=40, weight_decay=0.3, progress=False)
    for (name, after), before in zip(model.named_parameters(), start.parameters()):
        torch.testing.assert_close(after, before - 0.1 * (before.grad + 0.3 * before), msg=name)


def test_evaluate_uses_eval_mode_and_restores_the_mode():
    """Is a BatchNorm model evaluated with its running statistics, and put back in the mode it was in?"""
    X, y = _blobs(64)
    model = models.mlp(2, 8, 1, 3, batchnorm=True)
    model.train()
    before = model[2].running_mean.clone()
    loss, _ = reference.evaluate(model, X, y)
    assert model.training and torch.equal(before, model[2].running_mean)
    model.eval()
    assert abs(loss - torch.nn.functional.cross_entropy(model(X), y).item()) < 1e-6
    reference.evaluate(model, X, y)
    assert not model.training


def test_fit_skips_a_trailing_batch_of_one_under_batchnorm():
    """With 33 examples and batches of 32, does a BatchNorm model train without the batch-of-one error?"""
    X, y = _blobs(33)
    model = models.mlp(2, 8, 1, 3, batchnorm=True)
    assert len(train.fit(model, X, y, num_epochs=2, lr=0.1, batch_size=32, progress=False)) == 2


def _sgd_loop(model, X, y, lr, batch_size, order, zero="before"):
    """torch.optim.SGD driven the usual way, with zero_grad before backward, after step, or never."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    for start in range(0, len(X), batch_size):
        idx = order[start:start + batch_size]
        if zero == "before":
            opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
        opt.step()
        if zero == "after":
            opt.zero_grad()


def test_does_the_sgd_reference_match_torch_sgd_and_its_slips():
    """Does sgd_epoch_reference give torch.optim.SGD's parameters, and those of each slip it reproduces?"""
    import copy

    X, y = _blobs(45, seed=1)
    X = X.double()
    order = torch.randperm(45, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    start = models.mlp(2, 6, 2, 3, batchnorm=True).double()
    stale = [torch.randn_like(p) for p in start.parameters()]
    for zero, kwargs in [("before", {}), ("after", {"zero_grad": "after_step"}), ("never", {"zero_grad": "never"})]:
        loop, ref = copy.deepcopy(start), copy.deepcopy(start)
        for p, g in zip(loop.parameters(), stale):
            p.grad = g.clone()
        _sgd_loop(loop, X, y, 0.1, 8, order, zero)
        reference.sgd_epoch_reference(ref, X, y, 0.1, 8, order, initial_grads=stale, **kwargs)
        for p, q in zip(loop.state_dict().values(), ref.state_dict().values()):
            torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    eval_ref = copy.deepcopy(start)
    loss = reference.sgd_epoch_reference(eval_ref, X, y, 0.1, 8, order, train_mode=False)
    assert not eval_ref.training and torch.equal(eval_ref[2].running_mean, start[2].running_mean)
    assert loss > 0


def test_does_batch_mode_loss_measure_training_mode_and_change_nothing():
    """Does batch_mode_loss average training-mode losses over batches, leaving statistics and mode as they were?"""
    X, y = _blobs(70)
    torch.manual_seed(0)
    plain = models.mlp(2, 8, 2, 3)
    loss, acc = train.batch_mode_loss(plain, X, y, batch_size=16)
    assert abs(loss - reference.evaluate(plain, X, y)[0]) < 1e-5  # no BatchNorm: the mode does not matter
    bn = models.mlp(2, 8, 2, 3, batchnorm=True).eval()
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    loss, acc = train.batch_mode_loss(bn, X, y, batch_size=16, seed=4)
    assert not bn.training
    assert all(torch.equal(before[k], v) for k, v in bn.state_dict().items())
    order = torch.randperm(70, generator=torch.Generator().manual_seed(4))
    probe = models.mlp(2, 8, 2, 3, batchnorm=True)
    probe.load_state_dict(before)
    probe.train()
    with torch.no_grad():
        batches = [order[s:s + 16] for s in range(0, 70, 16)]
        want = sum(torch.nn.functional.cross_entropy(probe(X[i]), y[i], reduction="sum").item() for i in batches) / 70
    assert abs(loss - want) < 1e-5 and 0 <= acc <= 1


def test_does_call_with_gradients_leave_the_gradients_for_the_call():
    """Does call_with_gradients put the given gradients in .grad before calling the function?"""
    model = models.mlp(2, 3, 1, 2)
    grads = [torch.full_like(p, 2.0) for p in model.parameters()]
    seen = train.call_with_gradients(lambda m, k: (k, [p.grad.sum().item() for p in m.parameters()]), model, grads, 7)
    assert seen == (7, [2.0 * p.numel() for p in model.parameters()])
