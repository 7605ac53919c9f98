"""Datasets for the labs, built or read offline and cached outside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

CACHE_ENV = "COURSE_CACHE_DIR"


def cache_dir() -> Path:
    """The folder for generated datasets: `$COURSE_CACHE_DIR`, else `~/.cache/batch-norm-labs`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "batch-norm-labs")


def load_mnist1d(seed: int = 42, root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST-1D (4,000 train / 1,000 test signals of 40 features, 10 classes) as `X_train, y_train, X_test, y_test`.

    Generated with the `mnist1d` package's own generator and `seed` (never downloaded), then cached
    as an .npz file in `root` (default `cache_dir()`). Used by residual_variance.
    """
    path = Path(root or cache_dir()) / f"mnist1d_seed{seed}.npz"
    if not path.is_file():
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.seed = seed
        data = make_dataset(args)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=data["x"], y=data["y"], x_test=data["x_test"], y_test=data["y_test"])
        tmp.replace(path)  # atomic, so a half-written cache never survives an interrupted run
    with np.load(path) as f:
        return (
            torch.as_tensor(f["x"], dtype=torch.float32),
            torch.as_tensor(f["y"], dtype=torch.long),
            torch.as_tensor(f["x_test"], dtype=torch.float32),
            torch.as_tensor(f["y_test"], dtype=torch.long),
        )
