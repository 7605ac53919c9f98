"""Ghost BatchNorm and dropout stacks, and accuracies read at a matched training accuracy."""

import numpy as np
import pytest
import torch
from torch import nn

from course_oracles.norm_ablation import normalize
from course_utils import norm_ablation as na
from course_utils.ghost_batchnorm import GhostStack, at_matched_accuracy


def _stack(kind="full", seeds=(0, 1), **kwargs):
    return GhostStack(normalize, kind, list(seeds), 5, 8, 2, 3, **kwargs)


def _bn_model(stack, m):
    """Model m of a one-hidden-layer-per-BatchNorm stack as torch layers, BatchNorm in training mode."""
    layers = []
    for i, (W, b) in enumerate(zip(stack.weights, stack.biases)):
        linear = nn.Linear(*W.shape[1:])
        with torch.no_grad():
            linear.weight.copy_(W[m].T)
            linear.bias.copy_(b[m, 0])
        layers.append(linear)
        if i < stack.depth:
            layers += [nn.BatchNorm1d(W.shape[2]), nn.ReLU()]
    return nn.Sequential(*layers).train()


def test_does_each_ghost_group_get_the_logits_of_batchnorm_on_that_group_alone():
    stack = _stack(group_size=4)
    X = torch.randn(12, 5)
    out = stack(X)
    for m in range(2):
        reference = _bn_model(stack, m)
        for start in range(0, 12, 4):
            torch.testing.assert_close(out[m, start:start + 4], reference(X[start:start + 4]), rtol=1e-4, atol=1e-5)


def test_does_a_group_of_the_whole_batch_match_plain_batchnorm_and_differ_from_small_groups():
    X = torch.randn(16, 5)
    whole, none, small = _stack(group_size=16), _stack(group_size=None), _stack(group_size=4)
    torch.testing.assert_close(whole(X), none(X))
    torch.testing.assert_close(whole(X)[1], _bn_model(whole, 1)(X), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(small(X), whole(X), atol=1e-3)


def test_does_evaluation_use_the_whole_sets_statistics_whatever_the_group():
    X = torch.randn(10, 5)  # 10 does not split into groups of 4: evaluation must not try
    ghost, plain = _stack(group_size=4).eval(), _stack().eval()
    torch.testing.assert_close(ghost(X), plain(X))


def test_are_batches_that_do_not_split_and_bad_arguments_refused():
    with pytest.raises(ValueError, match="ghost groups of 4"):
        _stack(group_size=4)(torch.randn(10, 5))
    with pytest.raises(ValueError, match="at least two"):
        _stack(group_size=1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        _stack(dropout=[0.1, 1.0])


def test_does_dropout_drop_each_models_share_of_units_and_keep_the_mean_in_training_only():
    stack = GhostStack(normalize, "none", [0, 1, 2], 5, 400, 1, 400, dropout=[0.0, 0.2, 0.6])
    with torch.no_grad():  # an identity output layer: the logits are the hidden layer's output after dropout
        stack.weights[1].copy_(torch.eye(400).expand(3, -1, -1))
    X = torch.randn(200, 5)
    with torch.no_grad():
        dropped, kept = stack.train()(X), stack.eval()(X)
    active = kept > 0
    for m, p in enumerate([0.0, 0.2, 0.6]):
        zeroed = ((dropped[m] == 0) & active[m]).float().sum() / active[m].float().sum()
        assert abs(float(zeroed) - p) < 0.02
        survivors = dropped[m] > 0
        torch.testing.assert_close(dropped[m][survivors], kept[m][survivors] / (1 - p))


def test_does_training_with_train_stacks_run_and_lower_the_loss():
    torch.manual_seed(0)
    X, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    stacks = {"ghost": _stack(group_size=4), "dropout": _stack("none", dropout=0.1)}
    before = {name: na.loss(s, X, y) for name, s in stacks.items()}
    runs = na.train_stacks(stacks, X, y, X, y, 20, 0.05, batch_size=16, progress=False)
    for name, s in stacks.items():
        assert (na.loss(s, X, y) < before[name]).all()
        assert runs[name].train_loss.shape == (20, 2)


def test_are_accuracies_read_at_the_first_epoch_that_reaches_the_target():
    train = [[0.5, 0.6, 0.2], [0.8, 0.7, 0.3], [0.95, 0.9, 0.4]]  # (epochs, models)
    test = [[0.4, 0.5, 0.1], [0.6, 0.55, 0.2], [0.7, 0.65, 0.3]]
    m = at_matched_accuracy(train, test, 0.8)
    np.testing.assert_array_equal(m.epoch, [2, 3, np.nan])
    np.testing.assert_array_equal(m.train_accuracy, [0.8, 0.9, np.nan])
    np.testing.assert_array_equal(m.test_accuracy, [0.6, 0.65, np.nan])
    np.testing.assert_allclose(m.gap, [0.2, 0.25, np.nan])
    with pytest.raises(ValueError, match="epochs, models"):
        at_matched_accuracy(train, test[:2], 0.8)
