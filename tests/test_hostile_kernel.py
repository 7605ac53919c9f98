"""Does a hostile kernel (issue #21, the kernel side) earn nothing, read nothing, and leave the grading process's
memory within its bound?"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import course_utils as cu
from course_utils.grading.client import MAX_FRAME_BYTES, Outputs
from course_utils.grading.jobs import GradeJob, JobKernel, Limits
from course_utils.grading.pool import close_local_resources
from course_utils.grading.referee import run_test
from grading_fixtures import (CHATTERS, FLOODS_THE_GRADER, LIES_ABOUT_ITS_CLASS, READS_WHAT_IT_SHOULD_NOT,
                              SHIFTS_ITS_SHAPE, ZEROES_ITS_INPUT)

MODULES = {"np": np, "torch": torch, "nn": nn, "cu": cu}
# The grading process's peak memory while a kernel floods it, above what it held before: ZMQ holds at most two
# complete messages per socket here (each part at most MAX_FRAME_BYTES), one more is being read and one checked.
GROWTH_BOUND_MB = 4 * MAX_FRAME_BYTES // 2**20


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """A data folder holding a file only root may read, and a scratch folder on sys.path (as a Dask worker's is)."""
    root = tmp_path_factory.mktemp("hostile")
    data, scratch = root / "data", root / "scratch"
    data.mkdir(), scratch.mkdir()
    (data / "open.txt").write_text("anyone")
    secret = data / "root-only.txt"
    secret.write_text("root-only-6b1e")
    secret.chmod(0o600)
    (scratch / "scratch.txt").write_text("scratch-3f9a")
    scratch.chmod(0o755)
    return {"data": data, "secret": secret, "scratch": scratch}


@pytest.fixture(scope="module")
def kernel(paths):
    sys.path.append(str(paths["scratch"]))
    job = GradeJob(lab="t", student="s", submission=b"", release="", tests={}, aliases={},
                   limits=Limits(cell_s=300, submission_s=900, memory_mb=2048), denied=[],
                   env={"COURSE_DATA_ROOT": str(paths["data"])})
    try:
        opened = JobKernel(job)
    finally:
        sys.path.remove(str(paths["scratch"]))
    yield opened
    opened.close()
    close_local_resources()


def _execute(kernel, code: str, limit_s: float = 120) -> str:
    outputs = Outputs()
    kernel.client.execute(code, time.monotonic() + limit_s, outputs)
    assert outputs.error() is None, outputs.items
    return "".join(o.get("text", "") for o in outputs.items)


def _status_mb(field: str) -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _run(kernel, source: str):
    return run_test(kernel.client, source, "t", MODULES, {}, 60)


def test_a_flood_of_large_messages_is_dropped_unread_within_the_memory_bound(kernel):
    """Thirty 100 MB outputs: each is dropped unread and noted once, the grader's peak memory grows by less than
    GROWTH_BOUND_MB, and the kernel goes on answering."""
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from what is resident now
    before = _status_mb("VmRSS")
    printed = _execute(kernel, FLOODS_THE_GRADER.format(size=100_000_000, count=30), limit_s=300)
    growth = _status_mb("VmHWM") - before
    assert growth < GROWTH_BOUND_MB, f"the grading process grew by {growth:.0f} MB"
    assert "output dropped: 30 message(s)" in printed and "flooded" in printed, printed
    assert _execute(kernel, "print(6 * 7)") == "42\n"


def test_many_small_messages_are_capped(kernel):
    """Twenty thousand outputs keep the cell's first megabyte, and the grader's memory barely moves."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mb("VmRSS")
    printed = _execute(kernel, CHATTERS.format(count=20_000), limit_s=300)
    assert _status_mb("VmHWM") - before < 100
    assert "output truncated" in printed


def test_an_answer_too_large_to_read_fails_the_test_not_the_kernel(kernel):
    _execute(kernel, "import torch\ndef big():\n    return torch.zeros(20_000_000), torch.zeros(20_000_000)")
    verdict = _run(kernel, "assert big() is not None")
    assert not verdict.passed and "larger than the grader reads" in verdict.message, verdict.message
    assert _run(kernel, "assert len(big()[0]) == 20_000_000").passed is False
    assert _execute(kernel, "print('still here')") == "still here\n"


def test_a_handle_cannot_claim_a_class_of_plain_data(kernel):
    _execute(kernel, LIES_ABOUT_ITS_CLASS)
    verdict = _run(kernel, "got = make_list()\nassert not isinstance(got, (list, torch.Tensor, np.ndarray)), type(got)")
    assert verdict.passed, verdict.message


def test_a_handle_s_iteration_is_read_once_and_frozen(kernel):
    _execute(kernel, SHIFTS_ITS_SHAPE)
    verdict = _run(kernel, """
batches = make_batches()
assert all(isinstance(b, torch.Tensor) for b in batches)
assert [b.tolist() for b in batches] == [[1.0, 1.0], [1.0, 1.0]]
""")
    assert verdict.passed, verdict.message


def test_the_probe_names_an_input_changed_in_place_here_and_in_the_referee(kernel):
    namespace: dict = {}
    exec(ZEROES_ITS_INPUT, namespace)
    X = torch.randn(4, 3)
    got, changed = cu.testing.inputs_changed(namespace["normalize"], X)
    assert changed == ["X"] and torch.equal(X, torch.zeros(4, 3))  # in a student's notebook: plain Python
    _execute(kernel, ZEROES_ITS_INPUT)
    verdict = _run(kernel, """
got, changed = cu.testing.inputs_changed(normalize, torch.randn(4, 3))
assert changed == ["X"], changed
assert torch.equal(got, torch.zeros(4, 3))
_, changed = cu.testing.inputs_changed(torch.clone, torch.randn(4, 3))
assert changed == [], changed
""")
    assert verdict.passed, verdict.message


# Each student function changes what it was given in place and answers so as to match a test that would read its
# expected value from its own (tampered) objects after the call; the test cell beside it is that test.
TAMPERS_WITH_ITS_INPUTS = """
import numpy as np, torch
def center_tensor(X):
    X.zero_()
    return torch.zeros_like(X)
def center_array(a):
    a[...] = 0
    return np.zeros_like(a)
def gradient_of(w):
    w.grad = torch.full_like(w, 7.0)
    return torch.full_like(w, 7.0)
def sorted_copy(items):
    items[:] = [3, 2, 1]
    return [3, 2, 1]
def lookup(table):
    table.clear()
    table["answer"] = 42
    return 42
def fit(model):
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    model.eval()
    return 0.0
"""
# case: (the test's object X, the call, the expected value a careless test reads from X after the call, what X
# must still be, the untouched copy it is compared with, the parameter name the probe reports)
TAMPERING = {
    "a tensor zeroed": ("X = torch.randn(4, 3)", "center_tensor", "X - X.mean(0)", "torch.equal(X, kept)",
                        "X.clone()", "X"),
    "an array zeroed": ("X = np.random.default_rng(0).normal(size=(4, 3))", "center_array", "X - X.mean(0)",
                        "np.array_equal(X, kept)", "X.copy()", "a"),
    "a gradient set": ("X = torch.randn(3, requires_grad=True)", "gradient_of",
                       "torch.zeros(3) if X.grad is None else X.grad", "X.grad is None and torch.equal(X, kept)",
                       "X.detach().clone()", "w"),
    "a list rewritten": ("X = [1, 2, 3]", "sorted_copy", "sorted(X)", "X == kept", "list(X)", "items"),
    "a dict rewritten": ("X = {'question': 6 * 7}", "lookup", "X.get('answer')", "X == kept", "dict(X)", "table"),
    "a module trained to nothing": ("X = torch.nn.Linear(3, 1)", "fit", "float(X.weight.detach().abs().sum())",
                                    "torch.equal(X.weight, kept) and X.training", "X.weight.detach().clone()", "model"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_a_function_that_changes_its_inputs_in_place_gains_nothing(kernel, case):
    """Checked against the test's own objects after the call, the tampering answer fails; those objects stay as the
    test made them, and the probe names the argument the function changed."""
    make, func, want, untouched, keep, name = TAMPERING[case]
    _execute(kernel, TAMPERS_WITH_ITS_INPUTS)
    careless = _run(kernel, f"{make}\ngot = {func}(X)\nwant = {want}\n"
                            "same = torch.equal(torch.as_tensor(got), torch.as_tensor(want)) if hasattr(got, 'shape') \\\n"
                            "    else got == want\nassert same, (got, want)")
    assert not careless.passed, case
    verdict = _run(kernel, f"{make}\nkept = {keep}\n{func}(X)\nassert {untouched}, 'the test\\'s own object changed'\n"
                           f"_, changed = cu.testing.inputs_changed({func}, X)\nassert changed == [{name!r}], changed")
    assert verdict.passed, f"{case}: {verdict.message}"


def test_the_sandbox_reads_no_root_only_file_no_scratch_folder_and_no_instructor_module(kernel, paths):
    targets = [str(paths["data"] / "open.txt"), str(paths["secret"]), str(paths["scratch"] / "scratch.txt")]
    found = eval(_execute(kernel, READS_WHAT_IT_SHOULD_NOT.format(paths=targets)))
    assert found[targets[0]] == "anyone"  # the data folder is there
    assert found[targets[1]] == "PermissionError"  # but a file only root may read is not readable
    assert found[targets[2]] in ("FileNotFoundError", "PermissionError")
    assert found["course_utils.grading"] == found["course_utils.grading.referee"] == "ModuleNotFoundError"
    assert found["course_oracles"] == "ModuleNotFoundError"
    assert found["in memory"] == [] and found["grading folder"] == ["__init__.py"]  # the one that refuses


def test_a_message_part_past_the_frame_limit_cuts_the_kernel_off_with_that_reason(paths):
    job = GradeJob(lab="t", student="s", submission=b"", release="", tests={}, aliases={},
                   limits=Limits(cell_s=300, submission_s=900, memory_mb=2048), denied=[])
    kernel = JobKernel(job)
    try:
        with pytest.raises(Exception, match="larger than the grader reads"):
            kernel.client.execute(FLOODS_THE_GRADER.format(size=MAX_FRAME_BYTES + 2**20, count=1),
                                  time.monotonic() + 300, Outputs())
    finally:
        kernel.close()
        close_local_resources()
