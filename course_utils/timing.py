"""Wall-clock timing of forward passes for the labs: medians over interleaved repeats, per layer type too."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable

import torch
from torch import nn


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def median_seconds(calls: dict[str, Callable[[], object]], repeats: int = 20, warmup: int = 2,
                   device: torch.device | None = None) -> dict[str, float]:
    """The median wall time of each call, the calls taking turns in every round, so that a change in the
    machine's load reaches them all alike. Pass the device the calls run on to wait for a GPU's work."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(warmup + repeats):
        for name, call in calls.items():
            _sync(device)
            start = time.perf_counter()
            call()
            _sync(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


@torch.no_grad()
def seconds_per_layer_type(model: nn.Sequential, x: torch.Tensor, repeats: int = 20, warmup: int = 2,
                           device: torch.device | None = None) -> dict[str, float]:
    """The median time each layer of a Sequential takes on the input it meets in `model(x)`, summed per layer
    type ("Conv2d", "BatchNorm2d", ...): where a forward pass spends its time."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"seconds_per_layer_type times the layers of an nn.Sequential, not a {type(model).__name__}")
    inputs = []
    for layer in model:
        inputs.append(x)
        x = layer(x)
    calls = {f"{i}": (lambda layer=layer, inp=inp: layer(inp)) for i, (layer, inp) in enumerate(zip(model, inputs))}
    medians = median_seconds(calls, repeats=repeats, warmup=warmup, device=device)
    totals: dict[str, float] = defaultdict(float)
    for i, layer in enumerate(model):
        totals[type(layer).__name__] += medians[f"{i}"]
    return dict(totals)
