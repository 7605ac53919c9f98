"""Do the student checks accept right answers and explain wrong ones in words?"""

import numpy as np
import pytest
import torch
from torch import nn

from course_oracles import checks as reference
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
        assert reference.conv_output_size_reference(n, k, p, s, d) == layer(torch.zeros(1, 1, n, n)).shape[-1]


def _answers(formula, cases):
    """((n, k, p, s, d), got, want) triples: a student's `formula` against the reference on `cases`."""
    return [(case, formula(*case), reference.conv_output_size_reference(*case)) for case in cases]


def _random_cases(seed, count=60):
    gen = torch.Generator().manual_seed(seed)
    cases = []
    while len(cases) < count:
        n, k, p, s, d = (int(torch.randint(lo, hi, (1,), generator=gen)) for lo, hi in
                         [(1, 100), (1, 8), (0, 4), (1, 5), (1, 4)])
        if n + 2 * p >= d * (k - 1) + 1:
            cases.append((n, k, p, s, d))
    return cases


def test_explain_conv_size_is_silent_on_right_answers():
    """Does a right set of answers give no message at all?"""
    assert checks.explain_conv_size(_answers(reference.conv_output_size_reference, _random_cases(0))) == ""


@pytest.mark.parametrize("slip, formula", checks._CONV_SIZE_SLIPS, ids=[s for s, _ in checks._CONV_SIZE_SLIPS])
def test_explain_conv_size_names_each_slip_it_can_confirm(slip, formula):
    """Is each classic slip, made on every input, named with its witnesses?"""
    message = checks.explain_conv_size(_answers(formula, _random_cases(1)))
    assert message.endswith(f": {slip}."), message
    assert "Likely cause, confirmed on all 60 inputs" in message


def test_explain_conv_size_quotes_the_first_wrong_case():
    """Does the message say which input, what the student computed and what the layer gives?"""
    cases = [(574, 5, 3, 3, 1), (224, 5, 3, 3, 1)]
    message = checks.explain_conv_size([(cases[0], 191, 192), (cases[1], 76, 76)])
    assert message.startswith("for n=574, kernel_size=5, padding=3, stride=3, dilation=1 you computed 191, "
                              "the layer gives 192 (1 of your 2 answers are wrong)")


def test_explain_conv_size_names_no_slip_on_a_coincidence():
    """Is a slip that matches one wrong answer by chance, but not the others, left unnamed?"""
    # 191 is what the missing + 1 gives for this input, but the student's other answers are not.
    answers = [((574, 5, 3, 3, 1), 191, 192)] + [
        (case, reference.conv_output_size_reference(*case) + 2, reference.conv_output_size_reference(*case))
        for case in _random_cases(2, 10)]
    message = checks.explain_conv_size(answers)
    assert "Likely cause" not in message and "Check each term" in message


def test_explain_conv_size_needs_several_witnesses():
    """With fewer inputs than `min_witnesses` on which the slip changes the result, is nothing named?"""
    slip = dict(checks._CONV_SIZE_SLIPS)["the dilation is ignored; the kernel spans dilation * (kernel_size - 1) + 1 pixels"]
    cases = [(20, 3, 0, 1, 2), (20, 3, 0, 1, 1), (15, 5, 1, 2, 1)]  # only the first has a dilation
    answers = _answers(slip, cases)
    assert "Likely cause" not in checks.explain_conv_size(answers)
    assert checks.conv_size_slip(answers, min_witnesses=1) == (
        "the dilation is ignored; the kernel spans dilation * (kernel_size - 1) + 1 pixels", 1)


def test_explain_conv_size_names_no_slip_when_two_fit():
    """When the inputs cannot tell two slips apart, is neither named?"""
    # At stride 3, "+ 1 missing" and "+ 1 inside the division" agree unless n - k + 1 is a multiple of 3.
    cases = [(n, 3, 0, 3, 1) for n in range(6, 30) if (n - 3 + 1) % 3]
    missing = dict(checks._CONV_SIZE_SLIPS)["the final + 1 is missing"]
    answers = _answers(missing, cases)
    assert checks.conv_size_slip(answers) is None
    assert "Likely cause" not in checks.explain_conv_size(answers)
    told_apart = _answers(missing, cases + [(n, 3, 0, 3, 1) for n in (5, 8, 11)])
    assert checks.conv_size_slip(told_apart) == ("the final + 1 is missing", len(told_apart))


def test_check_int_tuple_refuses_lists_tensors_and_numpy_ints():
    """Are a list, a tuple with a NumPy integer and a wrong length each reported as such?"""
    checks.check_int_tuple((4, 16, 8, 8), 4, "shape")
    with pytest.raises(AssertionError, match="should be a tuple of ints, but it is a list"):
        checks.check_int_tuple([4, 16, 8, 8], 4, "shape")
    with pytest.raises(AssertionError, match="entry 1 is a int64"):
        checks.check_int_tuple((4, np.int64(16)), None, "shape")
    with pytest.raises(AssertionError, match="should have 4 entries"):
        checks.check_int_tuple((4, 16), 4, "shape")


def test_does_side_table_measure_each_axis_of_every_conv_and_pooling_layer():
    """Does SideTable.measure record what the layers give per axis, and refuse sides it was not given?"""
    layers = [nn.Conv2d(1, 2, (3, 5), padding=(1, 0), stride=(2, 1), dilation=(1, 2)), nn.ReLU(),
              nn.MaxPool2d(2, dilation=(1, 2))]
    table = checks.SideTable.measure(layers, (1, 1, 20, 31))
    want = {(20, 3, 1, 2, 1): 10, (31, 5, 0, 1, 2): 23, (10, 2, 0, 2, 1): 5, (23, 2, 0, 2, 2): 11}
    assert table.sides == want
    for (n, k, p, s, d), side in want.items():
        assert table(n, k, p, s, d) == side == reference.conv_output_size_reference(n, k, p, s, d)
    with pytest.raises(KeyError, match="n=7"):
        table(7, 3)
