"""MNIST-1D loader: generated offline, cached, and identical to the package's own generator."""

import numpy as np
import torch

from course_utils import data


def test_mnist1d_matches_generator_and_caches(tmp_path, monkeypatch):
    from mnist1d.data import get_dataset_args, make_dataset

    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    X, y, X_test, y_test = data.load_mnist1d(seed=3)
    assert X.shape == (4000, 40) and X_test.shape == (1000, 40)
    assert X.dtype == torch.float32 and y.dtype == torch.long
    assert set(y.tolist()) == set(range(10))
    args = get_dataset_args()
    args.seed = 3
    ref = make_dataset(args)
    np.testing.assert_allclose(X.numpy(), ref["x"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y_test.numpy(), ref["y_test"])
    cached = tmp_path / "mnist1d_seed3.npz"
    assert cached.is_file()
    np.savez(cached, x=np.zeros((2, 40)), y=np.zeros(2), x_test=np.zeros((1, 40)), y_test=np.zeros(1))
    assert data.load_mnist1d(seed=3)[0].shape == (2, 40), "a second call must read the cache"

