"""Reference of conv_shapes' output-size exercise."""

from __future__ import annotations


def conv_output_size_reference(n: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """The side nn.Conv2d (or nn.MaxPool2d) gives an input side `n`: floor((n + 2p - d(k - 1) - 1) / s) + 1."""
    return (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
