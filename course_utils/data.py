"""Datasets for the labs, loaded as standardized tensors on the chosen device."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch

DATA_ROOT_ENV = "COURSE_DATA_ROOT"
DEFAULT_DATA_ROOT = Path.home() / ".cache" / "batch-norm-labs"
MIN_PIXEL_STD = 0.1  # pixels that barely vary in training (image borders) are divided by this instead


class Split(NamedTuple):
    """Training and test tensors of one dataset: `X_train, y_train, X_test, y_test = split`."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor


def data_root(root: str | Path | None = None) -> Path:
    """The folder datasets live in: `root` if given, else `$COURSE_DATA_ROOT`, else a per-user cache."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(env).expanduser() if env else DEFAULT_DATA_ROOT


def load_fashion_mnist(
    root: str | Path | None = None,
    num_train: int = 6000,
    seed: int = 0,
    device: torch.device | str = "cpu",
    download: bool = True,
) -> Split:
    """Fashion-MNIST as flat 784-feature tensors, each pixel standardized with training statistics.

    Keeps a random subset of `num_train` training images (all of them when fewer exist) and the
    whole test set; downloads with torchvision when the files are missing. Used by mlp_depth_sweep.
    """
    from torchvision.datasets import FashionMNIST

    folder = data_root(root)
    try:
        train = FashionMNIST(str(folder), train=True, download=download)
        test = FashionMNIST(str(folder), train=False, download=download)
    except RuntimeError as err:  # torchvision raises RuntimeError for missing files and failed downloads
        raise FileNotFoundError(
            f"Fashion-MNIST is not in {folder / 'FashionMNIST' / 'raw'} and could not be downloaded. "
            f"Offline, set the environment variable {DATA_ROOT_ENV} (or pass root=...) to a folder "
            f"holding FashionMNIST/raw/, such as the course's shared/datasets folder."
        ) from err
    X_train, y_train = train.data.reshape(len(train.data), -1).float() / 255, train.targets
    X_test, y_test = test.data.reshape(len(test.data), -1).float() / 255, test.targets
    keep = torch.randperm(len(X_train), generator=torch.Generator().manual_seed(seed))[:num_train]
    X_train, y_train = X_train[keep], y_train[keep]
    mean, std = X_train.mean(dim=0), X_train.std(dim=0).clamp_min(MIN_PIXEL_STD)
    return Split(*(t.to(device) for t in ((X_train - mean) / std, y_train, (X_test - mean) / std, y_test)))
