"""Do the student checks accept right answers and explain wrong ones in words?"""

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import checks


def test_check_close_accepts_within_tolerance_and_names_the_worst_entry():
    """Is a float32 rounding difference accepted, and is a real error located and quantified?"""
    want = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    checks.check_close(want + 1e-7, want, "x")
    wrong = want.clone()
    wrong[1, 0] = 3.5
    with pytest.raises(AssertionError, match=r"x is off at index \(1, 0\): got 3.5, expected 3 .*1 of 4 entries"):
        checks.check_close(wrong, want, "x")


def test_check_close_refuses_broadcasting_and_nan():
    """Does a (3,) answer for a (1, 3) target fail on shape, and does NaN fail as NaN?"""
    with pytest.raises(AssertionError, match="has 1 dimensions"):
        checks.check_close(np.zeros(3), np.zeros((1, 3)), "y")
    with pytest.raises(AssertionError, match="NaN or infinite"):
        checks.check_close(np.array([np.nan, 1.0]), np.array([0.0, 1.0]), "y")


def test_check_shape_names_the_wrong_dimension():
    """Does a shape mismatch say which dimension is off and by how much?"""
    checks.check_shape(torch.zeros(2, 3), (2, 3), "out")
    with pytest.raises(AssertionError, match=r"dimension 2 is 191 instead of 192 \(too small by 1\)"):
        checks.check_shape((8, 16, 191, 191), (8, 16, 192, 192), "out")


def test_check_dtype_and_type_and_equal():
    """Do the dtype, type and equality checks say what was expected?"""
    with pytest.raises(AssertionError, match="float32 but should have dtype torch.float64"):
        checks.check_dtype(torch.zeros(1), torch.float64, "grad")
    with pytest.raises(AssertionError, match="should be a Tensor, but it is a ndarray"):
        checks.check_type(np.zeros(1), torch.Tensor, "out")
    with pytest.raises(AssertionError, match="is 3 but should be 4. hint"):
        checks.check_equal(3, 4, "n", hint="hint")


def test_check_unchanged_detects_in_place_updates():
    """Is an in-place change to a tensor that must stay put reported with the reason?"""
    before = torch.ones(3)
    after = before.clone()
    checks.check_unchanged(before, after, "buffer", "eval mode")
    after[0] = 2
    with pytest.raises(AssertionError, match="buffer changed, but it must not: eval mode"):
        checks.check_unchanged(before, after, "buffer", "eval mode")


@pytest.mark.parametrize("seed", range(5))
def test_conv_output_size_reference_matches_torch(seed):
    """Does the reference formula agree with nn.Conv2d on random settings?"""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(40):
        n, k, p, s, d = (int(torch.randint(lo, hi, (1,), generator=gen)) for lo, hi in
                         [(1, 60), (1, 7), (0, 4), (1, 5), (1, 4)])
        if n + 2 * p < d * (k - 1) + 1:
            continue
        layer = nn.Conv2d(1, 1, k, padding=p, stride=s, dilation=d)
        assert checks.conv_output_size_reference(n, k, p, s, d) == layer(torch.zeros(1, 1, n, n)).shape[-1]


def test_explain_conv_size_names_the_wrong_term():
    """Does each classic slip in the formula get its own explanation?"""
    big = dict(n=574, kernel_size=5, padding=3, stride=3)  # the right answer is 192
    assert "maps side 574 to 192, but you predicted 191: the final + 1 is missing" in checks.explain_conv_size(191, **big)
    padded = dict(n=20, kernel_size=3, padding=6, stride=2)  # 15; with the padding counted once: 12
    assert "one side only" in checks.explain_conv_size(12, **padded)
    dilated = dict(n=20, kernel_size=3, dilation=2)  # 16; ignoring the dilation: 18
    assert "dilation is ignored" in checks.explain_conv_size(18, **dilated)
    assert "compare each term" in checks.explain_conv_size(1000, **big)
