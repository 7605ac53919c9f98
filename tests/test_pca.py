"""Does pca_project return the centred coordinates along the top principal directions?"""

import numpy as np
import torch

from course_utils import pca


def aligned(got, want):
    signs = np.sign((got * want).sum(0))
    signs[signs == 0] = 1
    return got * signs


def test_pca_project_matches_numpy_svd_on_wide_and_tall_data():
    """On data far from the origin, with more points than features and fewer, does it match NumPy's SVD?"""
    gen = torch.Generator().manual_seed(0)
    for n, d, k in [(40, 6, 2), (12, 20, 3)]:
        mix = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64)).Q
        H = (torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.linspace(5, 0.5, d, dtype=torch.float64)) @ mix.T
        H = H + 10 * torch.randn(d, generator=gen, dtype=torch.float64)
        Hc = H.numpy() - H.numpy().mean(0)
        want = Hc @ np.linalg.svd(Hc, full_matrices=False)[2][:k].T
        got = pca.pca_project(H, k)
        assert got.shape == (n, k) and got.dtype == torch.float64
        assert np.allclose(aligned(got.numpy(), want), want, atol=1e-9)
        variances = got.var(0)
        assert torch.all(variances[:-1] >= variances[1:])


def test_pca_project_leaves_its_input_alone():
    """Is the caller's matrix unchanged after the projection?"""
    H = torch.randn(10, 4) + 3
    before = H.clone()
    pca.pca_project(H)
    assert torch.equal(H, before)
