"""Are the shared MLPs built the way the labs describe them?"""

import torch
from torch import nn

from course_utils import models


def test_mlp_layer_order_and_sizes():
    """Are hidden layers Linear -> ReLU -> BatchNorm1d (or BN before ReLU), with the requested widths?"""
    after = models.mlp(784, 64, 3, 10, batchnorm=True)
    kinds = [type(m) for m in after]
    assert kinds == [nn.Linear, nn.ReLU, nn.BatchNorm1d] * 3 + [nn.Linear]
    before = models.mlp(784, 64, 2, 10, batchnorm=True, norm_position="before_relu")
    assert [type(m) for m in before] == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2 + [nn.Linear]
    assert models.mlp(5, 7, 0, 2)[0].in_features == 5 and len(models.mlp(5, 7, 0, 2)) == 1
    assert models.count_parameters(models.mlp(4, 8, 1, 3)) == 4 * 8 + 8 + 8 * 3 + 3


def test_he_init_keeps_relu_activations_order_one_through_depth():
    """With He initialization, does the mean squared activation stay O(1) through 30 ReLU layers?"""
    torch.manual_seed(0)
    model = models.mlp(100, 256, 30, 10)
    h = torch.randn(512, 100)
    for layer in model[:-1]:
        h = layer(h)
    assert 0.2 < h.pow(2).mean().item() < 5, h.pow(2).mean().item()
    assert all(m.bias.abs().sum() == 0 for m in model if isinstance(m, nn.Linear))
