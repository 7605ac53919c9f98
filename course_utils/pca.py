"""Principal component analysis for looking at high-dimensional activations in two dimensions."""

from __future__ import annotations

import torch


def pca_project(H: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Coordinates of the centred rows of H (n points x d features) along its top-k principal directions.

    Returns a tensor of shape (n, k) in H's dtype, the direction of largest variance first; the sign of each
    direction is arbitrary. Used by bn_chaos.
    """
    Hc = H - H.mean(dim=0)
    _, _, Vh = torch.linalg.svd(Hc, full_matrices=False)  # rows of Vh: principal directions
    return Hc @ Vh[:k].T
