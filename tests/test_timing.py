"""Tests for course_utils.timing: medians over interleaved rounds, and time summed per layer type."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from course_utils import timing


def test_does_the_median_rank_a_slow_call_above_a_fast_one():
    got = timing.median_seconds({"slow": lambda: time.sleep(0.01), "fast": lambda: None}, repeats=5, warmup=1)
    assert set(got) == {"slow", "fast"}
    assert got["slow"] >= 0.009 > got["fast"]


def test_are_warmup_rounds_left_out_and_every_call_made_in_each_round():
    order = []
    timing.median_seconds({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=2)
    assert order == ["a", "b"] * 5


def test_is_one_slow_round_ignored_by_the_median():
    delays = iter([0.05, 0.0, 0.0])
    got = timing.median_seconds({"x": lambda: time.sleep(next(delays))}, repeats=3, warmup=0)
    assert got["x"] < 0.02


def test_are_zero_repeats_refused():
    with pytest.raises(ValueError, match="repeats"):
        timing.median_seconds({"x": lambda: None}, repeats=0)


def test_is_time_summed_per_layer_type_over_the_inputs_each_layer_meets():
    seen = []

    class Record(nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return x

    model = nn.Sequential(nn.Conv2d(3, 4, 3), Record(), nn.ReLU(), nn.Conv2d(4, 2, 3), Record())
    got = timing.seconds_per_layer_type(model, torch.randn(2, 3, 8, 8), repeats=2, warmup=0)
    assert set(got) == {"Conv2d", "Record", "ReLU"}
    assert all(v >= 0 for v in got.values())
    assert set(seen) == {(2, 4, 6, 6), (2, 2, 4, 4)}  # each Record timed on its own input, not the model's


def test_is_a_model_other_than_a_sequential_refused():
    with pytest.raises(TypeError, match="Sequential"):
        timing.seconds_per_layer_type(nn.Linear(2, 2), torch.randn(1, 2))
