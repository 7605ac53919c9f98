"""Does load_fashion_mnist_images read Fashion-MNIST as standardized images, offline, with labels in place?"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils import data
from test_data import fake_root  # noqa: F401  (the fixture: a data root with 50 training and 20 test images)


def test_are_the_images_standardized_with_one_training_mean_and_std(fake_root):  # noqa: F811
    root, train, y_train, test, y_test = fake_root
    X_train, y_got, X_test, y_test_got = data.load_fashion_mnist_images(root, num_train=100)
    assert X_train.shape == (50, 1, 28, 28) and X_test.shape == (20, 1, 28, 28)
    assert X_train.dtype == torch.float32 and y_got.dtype == torch.int64
    pixels = train / 255
    mean, std = pixels.mean(), pixels.std(ddof=1)
    assert float(X_train.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(X_train.std()) == pytest.approx(1.0, rel=1e-4)
    # the test images are shifted and scaled with the training statistics, whatever their order
    got = np.sort(X_test.numpy().reshape(20, -1), axis=0)
    want = np.sort((test.reshape(20, -1) / 255 - mean) / std, axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert sorted(y_test_got.tolist()) == sorted(y_test.tolist())


def test_are_subsets_random_repeatable_and_labelled(fake_root):  # noqa: F811
    root, *_ = fake_root
    X, y, X_test, y_test = data.load_fashion_mnist_images(root, num_train=30, num_test=7, seed=3)
    assert len(X) == len(y) == 30 and len(X_test) == len(y_test) == 7
    again = data.load_fashion_mnist_images(root, num_train=30, num_test=7, seed=3)
    torch.testing.assert_close(X, again.X_train)
    torch.testing.assert_close(X_test, again.X_test)
    other = data.load_fashion_mnist_images(root, num_train=30, num_test=7, seed=4)
    assert not torch.equal(X, other.X_train)
    for images, labels in ((X, y), (X_test, y_test)):
        # pixel (0, 0) is 20 * label before standardizing, so sorting by it must sort the labels too
        order = torch.argsort(images[:, 0, 0, 0])
        assert torch.all(torch.diff(labels[order]) >= 0), "images were separated from their labels"


def test_does_missing_data_say_what_to_set(tmp_path):
    with pytest.raises(FileNotFoundError, match=data.DATA_ROOT_ENV):
        data.load_fashion_mnist_images(tmp_path, download=False)
