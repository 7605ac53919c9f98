"""Tests for course_utils.toy_transformer: the two placements of LayerNorm, the task, the stream and the training."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
from torch import nn

from course_utils import toy_transformer as tt

matplotlib.use("Agg")


def make(placement: str, depth: int = 3, norm=nn.LayerNorm) -> tt.ToyTransformer:
    torch.manual_seed(0)
    return tt.ToyTransformer(vocab=5, length=6, width=16, depth=depth, heads=2, placement=placement, norm=norm)


def test_is_an_unknown_placement_refused():
    with pytest.raises(ValueError, match="placement"):
        tt.Block(8, 2, "middle")


def test_does_post_ln_normalize_the_stream_and_pre_ln_only_the_branches():
    x = 5 + 3 * torch.randn(4, 6, 16)
    post, pre = tt.Block(16, 2, "post"), tt.Block(16, 2, "pre")
    with torch.no_grad():
        out_post, out_pre = post(x), pre(x)
        branch = pre._attend(pre.norm1(x))
        middle = x + branch
        expected_pre = middle + pre.mlp(pre.norm2(middle))
    assert torch.allclose(out_post.mean(-1), torch.zeros(4, 6), atol=1e-5)
    assert torch.allclose(out_post.var(-1, correction=0), torch.ones(4, 6), atol=1e-3)
    assert torch.allclose(out_pre, expected_pre, atol=1e-6)
    assert out_pre.mean().item() == pytest.approx(5, abs=1)  # the stream keeps its offset


def test_is_the_normalization_layer_the_one_given():
    model = make("pre", norm=lambda d: nn.RMSNorm(d))
    assert all(isinstance(b.norm1, nn.RMSNorm) and isinstance(b.norm2, nn.RMSNorm) for b in model.blocks)
    assert isinstance(model.final_norm, nn.RMSNorm)
    assert isinstance(make("post").final_norm, nn.Identity)


def test_is_the_target_the_reversed_sequence():
    tokens, target = tt.reversal_batch(torch.Generator().manual_seed(0), 3, 7, 4)
    assert tokens.shape == target.shape == (3, 7)
    assert torch.equal(target[:, 0], tokens[:, -1]) and torch.equal(target, tokens.flip(1))
    assert int(tokens.max()) < 4


def test_does_the_stream_grow_in_pre_ln_and_stay_at_one_in_post_ln():
    tokens, _ = tt.reversal_batch(torch.Generator().manual_seed(0), 64, 6, 5)
    pre, post = tt.stream_variances(make("pre", depth=6), tokens), tt.stream_variances(make("post", depth=6), tokens)
    assert len(pre) == len(post) == 7
    assert pre[0] == pytest.approx(post[0])  # the same embeddings
    assert all(b > a for a, b in zip(pre, pre[1:]))
    assert all(v == pytest.approx(1, abs=0.01) for v in post[1:])


def test_does_training_lower_the_loss_and_warm_up_shrink_the_first_step():
    model = make("pre", depth=1)
    losses = tt.train_reversal(model, steps=60, lr=0.01, progress=False)
    assert len(losses) == 60 and losses[0] > math.log(5) - 0.5 and sum(losses[-5:]) / 5 < losses[0] - 0.3
    moves = {}
    for warmup in (0, 10):
        model = make("pre", depth=1)
        before = model.readout.weight.detach().clone()
        tt.train_reversal(model, steps=1, lr=0.01, warmup=warmup, progress=False)
        moves[warmup] = (model.readout.weight.detach() - before).abs().max().item()
    assert moves[10] == pytest.approx(moves[0] / 10, rel=0.05)  # Adam's first step is lr per weight


def test_do_the_plots_draw_one_line_per_curve():
    fig, ax = tt.plot_stream({"a": [1, 2, 3], "b": [1, 1, 1]})
    assert len(ax.lines) == 2
    fig, ax = tt.plot_losses({"a": [2.0, 1.0], "b": [2.0, 2.0]}, chance=2.3)
    assert len(ax.lines) == 3 and ax.get_yscale() == "log"
