"""Do seeding, device choice and the quick-run flag behave as the labs assume?"""

import torch

import course_utils as cu


def test_seed_everything_repeats_random_draws():
    """Does seeding twice with the same seed give the same torch and NumPy draws?"""
    import numpy as np

    cu.seed_everything(3)
    first = (torch.randn(4), np.random.rand(4))
    cu.seed_everything(3)
    second = (torch.randn(4), np.random.rand(4))
    assert torch.equal(first[0], second[0]) and (first[1] == second[1]).all()


def test_get_device_uses_cuda_only_when_present():
    """Is the device CUDA exactly when torch sees a GPU?"""
    assert cu.get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_quick_flag_reads_the_environment(monkeypatch):
    """Does COURSE_QUICK switch `pick` between the full and the quick value, accepting the usual spellings?"""
    monkeypatch.delenv("COURSE_QUICK", raising=False)
    assert not cu.is_quick() and cu.pick(full=100, quick=5) == 100
    for value in ["1", "true", "YES", "on"]:
        monkeypatch.setenv("COURSE_QUICK", value)
        assert cu.is_quick() and cu.pick(full=100, quick=5) == 5
    for value in ["0", "false", ""]:
        monkeypatch.setenv("COURSE_QUICK", value)
        assert not cu.is_quick()


def test_submodules_load_on_first_use_and_typos_fail_clearly():
    """Is `cu.checks` reachable without an import, and does a misspelt name raise AttributeError?"""
    assert cu.checks.check_close is not None
    try:
        cu.chekcs
    except AttributeError as err:
        assert "chekcs" in str(err)
    else:
        raise AssertionError("a misspelt submodule should raise AttributeError")
