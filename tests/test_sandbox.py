"""Unit tests of the grading sandbox's rules and of how a submission is rebuilt on the release (no kernels)."""

from __future__ import annotations

import nbformat

from course_utils.grading_job import Limits, classify, import_aliases, rebuild
from course_utils.sandbox import FileGuard, SandboxError, SandboxPolicy
from grading_fixtures import source_notebook


def _guard(tmp_path):
    course = tmp_path / "course"
    for folder in ("home", "scratch", "course/course_utils", "course/source", "elsewhere"):
        (tmp_path / folder).mkdir(parents=True)
    return FileGuard(SandboxPolicy(home=str(tmp_path / "home"), writable=[str(tmp_path / "scratch")],
                                   denied=[str(course)], readable=[str(course / "course_utils")]))


def test_file_rules(tmp_path):
    guard = _guard(tmp_path)
    assert guard.allows(tmp_path / "home" / "data.csv", write=True)
    assert guard.allows(tmp_path / "course" / "course_utils" / "checks.py")
    assert not guard.allows(tmp_path / "course" / "course_utils" / "checks.py", write=True)
    assert not guard.allows(tmp_path / "course" / "source" / "lab.ipynb")
    assert not guard.allows(tmp_path / "home" / ".." / "course" / "gradebook.db")
    assert guard.allows(tmp_path / "elsewhere" / "x") and not guard.allows(tmp_path / "elsewhere" / "x", write=True)
    assert not guard.allows("/proc/1/environ")


def test_a_symlink_out_of_the_folder_is_followed_before_judging(tmp_path):
    guard = _guard(tmp_path)
    link = tmp_path / "home" / "innocent.txt"
    link.symlink_to(tmp_path / "course" / "source")
    assert not guard.allows(link)
    try:
        guard("open", (str(link), "r", 0))
    except SandboxError as err:
        assert "only files in its own folder" in str(err)
    else:
        raise AssertionError("opening a link into the source folder was allowed")


def test_processes_and_sockets_are_refused(tmp_path):
    guard = _guard(tmp_path)
    for event, args in [("subprocess.Popen", ("ls", ["ls"], None, None)), ("socket.connect", (None, ("1.2.3.4", 5))),
                        ("os.system", ("cat /etc/passwd",)), ("ctypes.dlopen", ("libc.so.6",))]:
        try:
            guard(event, args)
        except SandboxError:
            continue
        raise AssertionError(f"{event} was allowed")
    guard("import", ("json", None, [], [], []))  # ordinary events pass



def test_installed_packages_may_load_their_own_native_libraries(tmp_path):
    """Can torchvision load its operator library, while libc, a library in the home folder and ctypes calls stay refused?"""
    import sysconfig
    from pathlib import Path

    guard = _guard(tmp_path)
    shipped = Path(sysconfig.get_paths()["platlib"]) / "torchvision" / "_C.so"
    guard("ctypes.dlopen", (str(shipped),))
    (tmp_path / "home" / "evil.so").write_bytes(b"")
    for event, args in [("ctypes.dlopen", (str(tmp_path / "home" / "evil.so"),)), ("ctypes.dlopen", (None,)),
                        ("ctypes.call_function", (0, ()))]:
        try:
            guard(event, args)
        except SandboxError:
            continue
        raise AssertionError(f"{event}{args} was allowed")


def test_torch_patching_its_own_optimizers_is_not_tampering():
    """Is the first SGD optimizer a test builds (torch then wraps SGD.step itself) not reported as tampering?"""
    import torch

    from course_utils.sandbox import NameGuard

    guard = NameGuard({"torch": "torch"}, ["torch", "torch.optim"])
    for optimizer in (torch.optim.SGD, torch.optim.Adam):
        optimizer([torch.nn.Parameter(torch.zeros(2))], lr=0.1).step()
    assert guard.changes({"torch": torch, "__builtins__": __builtins__}) == []
    torch.optim.SGD.step = lambda self, closure=None: None  # a real replacement is still caught
    try:
        assert "torch.optim.sgd.SGD.step" in guard.changes({"torch": torch, "__builtins__": __builtins__})
    finally:
        guard.restore({"torch": torch})

def _id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _ids(nb):
    return [_id(c) for c in nb.cells]


def test_rebuild_restores_deleted_and_reordered_tests_and_keeps_answers():
    release = source_notebook()
    student = nbformat.reads(nbformat.writes(release), as_version=4)
    answer = next(c for c in student.cells if _id(c) == "add")
    answer.source = "def add(a, b):\n    return 42"
    answer.metadata["nbgrader"]["points"] = 100  # a claim the rebuild must drop
    del student.cells[_ids(student).index("test_add")]
    student.cells.insert(0, student.cells.pop(_ids(student).index("test_double")))
    student.cells[0].source = "pass"
    student.cells.append(nbformat.v4.new_code_cell("scratch = 1"))
    rebuilt = rebuild(student, release)
    assert [i for i in _ids(rebuilt) if i] == [i for i in _ids(release) if i]
    by_id = {i: c for i, c in zip(_ids(rebuilt), rebuilt.cells) if i}
    assert by_id["add"].source.endswith("return 42") and "points" not in by_id["add"].metadata["nbgrader"]
    assert by_id["test_double"].source == next(c for c in release.cells if _id(c) == "test_double").source
    order = _ids(rebuilt)
    assert rebuilt.cells[order.index("double") + 1].source == "scratch = 1"  # stays after the answer it followed
    assert [c.source for c in rebuilt.cells[:order.index("add")]] == [c.source for c in release.cells[:2]]


def test_import_aliases():
    found = import_aliases(["import numpy as np\nimport torch\nfrom torch import nn\n"
                            "from course_utils.checks import check_close as cc\nimport os.path", "not python ("])
    assert found == {"np": "numpy", "torch": "torch", "nn": "torch:nn", "cc": "course_utils.checks:check_close",
                     "os": "os"}


def test_classify_names_the_limit_each_cell_hit():
    nb = nbformat.v4.new_notebook()
    errors = [("KeyboardInterrupt", ""), ("MemoryError", ""), ("SandboxError", "no"), ("ValueError", "plain bug")]
    for ename, evalue in errors:
        cell = nbformat.v4.new_code_cell("x")
        cell.outputs = [nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])]
        nb.cells.append(cell)
    notes = classify(nb, Limits(cell_s=7, memory_mb=100))
    assert [n.split(":")[0] for n in notes] == ["cell time limit", "memory limit", "forbidden action"]
    assert "7 s" in notes[0] and "100 MiB" in notes[1]


def test_torchs_own_first_use_patches_are_not_tampering_but_a_lookalike_is():
    """torch wraps `manual_seed` when it imports its compiler and hooks `Optimizer.step` on first use."""
    import torch

    from course_utils.sandbox import NameGuard

    guard = NameGuard({}, ["torch.optim"])
    original = torch.manual_seed
    try:
        torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))])
        torch.manual_seed = torch._disable_dynamo(original)  # what importing torch._dynamo does
        assert not {c for c in guard.changes({}) if c.startswith("torch.")}
        fake = torch._disable_dynamo(lambda seed: None)
        fake.__wrapped__ = original
        torch.manual_seed = fake
        assert "torch.manual_seed" in guard.changes({})
    finally:
        torch.manual_seed = original
