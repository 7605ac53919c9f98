"""Does a test run in the referee read as it would in a student's notebook, with only plain data crossing?"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
import torch
from torch import nn

import course_utils as cu
from course_utils.grading.client import Outputs
from course_utils.grading.jobs import GradeJob, JobKernel, Limits
from course_utils.grading.pool import close_local_resources
from course_utils.grading.referee import free_names, run_test

MODULES = {"np": np, "torch": torch, "nn": nn, "cu": cu}
STUDENT = '''
import numpy as np, torch
from torch import nn
seen = []
scale = 3.0
def double_in_place(x):
    x *= 2
    return None
def append_one(items):
    items.append(1)
def train_step(model, opt, X, y):
    opt.zero_grad()
    loss = ((model(X) - y) ** 2).mean()
    loss.backward()
    opt.step()
    return loss.item()
class Scale(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.register_forward_hook(lambda m, i, o: None)
    def forward(self, x):
        return self.lin(x) * scale
def picky(n):
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    return n
def forever():
    while True:
        pass
def reseeds():
    torch.manual_seed(0)
    return torch.rand(1).item()
def uses_batch_norm(x):
    return torch.nn.functional.batch_norm(x, None, None, training=True)
'''


@pytest.fixture(scope="module")
def kernel():
    job = GradeJob(lab="t", student="s", submission=b"", release="", tests={}, aliases={},
                   limits=Limits(cell_s=60, submission_s=600, memory_mb=2048), denied=[])
    opened = JobKernel(job)
    outputs = Outputs()
    opened.client.execute(STUDENT, time.monotonic() + 60, outputs)
    assert outputs.error() is None, outputs.items
    yield opened
    opened.close()
    close_local_resources()


def _run(kernel, source: str, limit_s: float = 60):
    sources = {"uses_batch_norm": "def uses_batch_norm(x):\n    return torch.nn.functional.batch_norm(x, None, None)"}
    return run_test(kernel.client, source, "t", MODULES, sources, limit_s)


def _passes(kernel, source: str) -> None:
    verdict = _run(kernel, source)
    assert verdict.passed, verdict.message


def test_values_and_functions_of_the_student(kernel):
    _passes(kernel, "assert scale == 3.0 and isinstance(scale, float)\nassert picky(4) == 4")


def test_the_kernel_works_on_its_own_copies_of_the_tests_arguments(kernel):
    """In-place changes never come back: the test's tensor, array, list, module and optimizer stay as they were;
    the probe names what the student's code changed, and a kernel copy keeps what a training step leaves."""
    _passes(kernel, """
x = np.ones(3)
t = torch.ones(2, requires_grad=False)
double_in_place(x), double_in_place(t)
assert np.array_equal(x, np.ones(3)) and torch.equal(t, torch.ones(2))
items = []
append_one(items)
assert items == []
model = nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
before = model.weight.detach().clone()
X, y = torch.randn(8, 2), torch.randn(8, 1)
loss = train_step(model, opt, X, y)
assert isinstance(loss, float) and torch.equal(model.weight, before)
assert model.weight.grad is None and not opt.state_dict()["state"]
_, changed = cu.testing.inputs_changed(double_in_place, x)
assert changed == ["x"] and np.array_equal(x, np.ones(3)), changed
_, changed = cu.testing.inputs_changed(train_step, model, opt, X, y)
assert changed == ["model", "opt"], changed
resident, resident_opt = cu.testing.kernel_copy((model, torch.optim.SGD(model.parameters(), lr=0.1)))
train_step(resident, resident_opt, X, y)
assert not torch.equal(resident.weight, before) and resident.weight.grad is not None
assert torch.equal(model.weight, before)
""")


def test_student_objects_are_handles_that_read_like_the_real_thing(kernel):
    _passes(kernel, """
m = Scale(3)
assert isinstance(m, nn.Module) and not isinstance(m, nn.Linear)
assert isinstance(m.lin, nn.Linear) and m.lin.out_features == 3
assert len(list(m.parameters())) == 2 and sum(p.numel() for p in m.parameters()) == 12
out = m(torch.ones(2, 3))
state = m.state_dict()
want = (torch.ones(2, 3) @ state["lin.weight"].T + state["lin.bias"]) * 3
assert torch.allclose(out, want)
m.eval()
assert m.training is False and "Scale" in repr(m)
grads = cu.testing.vjp(m, [torch.ones(2, 3)], torch.ones(2, 3))
assert torch.allclose(grads["input_grads"][0], 3 * state["lin.weight"].sum(0).expand(2, 3))
assert cu.testing.hooks_on(m) == 1
""")


def test_the_students_exceptions_arrive_as_their_builtin_class(kernel):
    _passes(kernel, """
try:
    picky(-1)
except ValueError as err:
    assert "must not be negative" in str(err)
else:
    raise AssertionError("no error")
with cu.testing.raises(ValueError, "picky(-2) must raise"):
    picky(-2)
""")
    verdict = _run(kernel, "picky(-5)")
    assert not verdict.passed and verdict.message == "your code raised ValueError: n must not be negative, got -5"


def test_a_missing_name_and_a_wrong_answer_say_so(kernel):
    verdict = _run(kernel, "assert undefined_function(1) == 1")
    assert not verdict.passed and "does not define 'undefined_function'" in verdict.message
    verdict = _run(kernel, "assert picky(2) == 3, 'picky(2) should be 3'")
    assert not verdict.passed and verdict.message == "picky(2) should be 3"


def test_code_that_never_returns_is_stopped_and_the_kernel_goes_on(kernel):
    verdict = _run(kernel, "forever()", limit_s=3)
    assert not verdict.passed and verdict.message.startswith("time limit") and not verdict.kernel_lost
    _passes(kernel, "assert picky(1) == 1")


def test_probes_see_the_kernels_random_generators(kernel):
    _passes(kernel, """
cu.testing.seed_kernel(123)
before = cu.testing.global_rng_state()
reseeds()
assert cu.testing.global_rng_state() != before
""")


def test_implementation_checks_read_the_submitted_source(kernel):
    verdict = _run(kernel, 'cu.testing.check_no_calls(uses_batch_norm, {"F.batch_norm": "write it yourself"}, '
                           '"uses_batch_norm")')
    assert not verdict.passed and "functional.batch_norm: write it yourself" in verdict.message


def test_the_kernel_never_sees_the_tests_code_or_expected_values(kernel):
    outputs = Outputs()
    kernel.client.execute("""
from course_utils.kernel import agent
answer = agent.Agent.answer
def logged(self, request, buffers):
    seen.append(repr(request) + repr([bytes(b) for b in buffers]))
    return answer(self, request, buffers)
agent.Agent.answer = logged
""", time.monotonic() + 60, outputs)
    verdict = _run(kernel, "# secret-marker-44\nexpected = 'expected-value-77'\nassert picky(5) == 5, expected")
    assert verdict.passed
    kernel.client.execute("print(len(seen), ''.join(seen))", time.monotonic() + 60, outputs := Outputs())
    printed = "".join(o.get("text", "") for o in outputs.items)
    assert int(printed.split()[0]) > 0, printed
    assert "secret-marker-44" not in printed and "expected-value-77" not in printed


def test_a_lying_kernel_fails_the_test_without_harm(kernel):
    outputs = Outputs()
    kernel.client.execute("""
from course_utils.kernel import agent
honest = agent.Agent.answer
agent.Agent.answer = lambda self, request, buffers: (
    {'id': request.get('id'), 'ok': True, 'value': {'t': 'pickle', 'v': 'cos\\nsystem\\n'}}, [])
""", time.monotonic() + 60, outputs)
    verdict = _run(kernel, "assert picky(1) == 1")
    kernel.client.execute("agent.Agent.answer = honest", time.monotonic() + 60, Outputs())  # for the later tests
    assert not verdict.passed and "cannot read" in verdict.message


def test_free_names_are_what_a_test_reads_without_defining():
    source = "import math\nx = f(1)\ndef g():\n    return h(x) + math.pi\n[k(i) for i in items]\n"
    assert free_names(source) == ["f", "h", "items", "k"]


def test_inputs_changed_counts_gradients_set_or_changed_and_nothing_else():
    """In a notebook: a .grad set on a tensor or a module's parameter is a change; gradients that were there before
    and stay as they were are not, nor is an object compared by identity that only went through a copy."""
    model = nn.Linear(2, 1)
    model(torch.ones(1, 2)).sum().backward()
    assert cu.testing.inputs_changed(lambda model: None, model)[1] == []
    assert cu.testing.inputs_changed(lambda model: model(torch.ones(1, 2)).sum().backward(), model)[1] == ["model"]
    w = torch.zeros(3, requires_grad=True)
    assert cu.testing.inputs_changed(lambda w: setattr(w, "grad", torch.ones(3)), w)[1] == ["w"]
    assert cu.testing.inputs_changed(lambda w: w.grad.zero_(), w)[1] == ["w"]
    assert cu.testing.inputs_changed(lambda layers: len(layers), {"scaled": functools.partial(abs)})[1] == []


def test_call_non_contiguous_makes_the_strided_view_in_the_kernel(kernel):
    """Tensors reach the kernel contiguous; the probe hands the function a non-contiguous view of the same values."""
    _passes(kernel, """
X = torch.arange(6.0).reshape(2, 3)
assert cu.testing.call_non_contiguous(torch.Tensor.is_contiguous, X) is False
assert torch.equal(cu.testing.call_non_contiguous(torch.Tensor.clone, X), X)
with cu.testing.raises(RuntimeError, "view(-1) of a non-contiguous tensor must fail"):
    cu.testing.call_non_contiguous(torch.Tensor.view, X, -1)
""")


def test_inputs_changed_reads_nan_in_a_list_as_unchanged():
    """A loss curve holding NaN (a diverged run) that the function only reads is not reported as changed;
    one it overwrites is."""
    curve = [2.3, float("nan"), float("inf")]
    assert cu.testing.inputs_changed(lambda losses: max(losses), curve)[1] == []
    assert cu.testing.inputs_changed(lambda losses: losses.__setitem__(1, 0.0), curve)[1] == ["losses"]
