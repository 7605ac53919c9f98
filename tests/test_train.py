"""Do the shared training and evaluation loops learn, and leave the model's mode as they found it?"""

import torch

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
        assert train.evaluate(model, X, y)[1] > 0.95


def test_evaluate_uses_eval_mode_and_restores_the_mode():
    """Is a BatchNorm model evaluated with its running statistics, and put back in the mode it was in?"""
    X, y = _blobs(64)
    model = models.mlp(2, 8, 1, 3, batchnorm=True)
    model.train()
    before = model[2].running_mean.clone()
    loss, _ = train.evaluate(model, X, y)
    assert model.training and torch.equal(before, model[2].running_mean)
    model.eval()
    assert abs(loss - torch.nn.functional.cross_entropy(model(X), y).item()) < 1e-6
    train.evaluate(model, X, y)
    assert not model.training


def test_fit_skips_a_trailing_batch_of_one_under_batchnorm():
    """With 33 examples and batches of 32, does a BatchNorm model train without the batch-of-one error?"""
    X, y = _blobs(33)
    model = models.mlp(2, 8, 1, 3, batchnorm=True)
    assert len(train.fit(model, X, y, num_epochs=2, lr=0.1, batch_size=32, progress=False)) == 2
