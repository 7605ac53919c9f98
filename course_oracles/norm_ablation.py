"""Reference of why_batchnorm_helps' normalization exercise: BatchNorm's normalization and its two halves."""

from __future__ import annotations

import torch

KINDS = ("full", "mean", "variance", "none")


def normalize(h: torch.Tensor, kind: str, eps: float = 1e-5) -> torch.Tensor:
    """h (..., batch, features) normalized over the batch dimension per feature: "full" (h - mean) / sqrt(var + eps),
    "mean" h - mean, "variance" h / sqrt(var + eps), "none" h; biased variance, as BatchNorm uses."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if kind == "none":
        return h
    if h.shape[-2] < 2:
        raise ValueError(f"normalize needs a batch of at least two along dim -2, not shape {tuple(h.shape)}")
    mean = h.mean(dim=-2, keepdim=True)
    if kind == "mean":
        return h - mean
    scale = torch.sqrt(h.var(dim=-2, unbiased=False, keepdim=True) + eps)
    return (h - mean) / scale if kind == "full" else h / scale
