"""Does `course mutants` make the plausible wrong answers, grade them like submissions and count the kills?"""

from __future__ import annotations

import json
import re
import textwrap

import nbformat

from course_utils.grading.cli import main
from course_utils.grading.classroom import bundle_from, kernel_env
from course_utils.grading.jobs import GradeJob, Limits
from course_utils.grading.mutants import (MutantBatch, MutationReport, cell_mutants, graded_slice, run_batch,
                                         unknown_equivalents)
from course_utils.grading.pool import close_local_resources
from grading_fixtures import LAB, make_course
from notebook_cells import cell

ANSWER = textwrap.dedent('''
    def step(model, opt, X, y, eps=1e-5):
        """One training step."""
        ### BEGIN SOLUTION
        opt.zero_grad()
        mean = X.mean(dim=0, keepdim=True)
        var = X.var(dim=0, correction=0)
        Z = (X - mean) / (var + eps) ** 0.5
        with torch.no_grad():
            stats = Z.detach().clone()
        loss = ((model(Z) - y) ** 2).mean()
        loss.backward()
        opt.step()
        centered = X - mean
        return loss.item(), stats
        ### END SOLUTION
''').strip()


def test_mutants_cover_the_plausible_slips():
    made = {m.key for m in cell_mutants("step", ANSWER)}
    for key in ["opt.zero_grad() -> pass", "X.mean(dim=0, keepdim=True) -> X.mean(dim=1, keepdim=True)",
                "X.mean(dim=0, keepdim=True) -> X.mean(dim=0)", "X.var(dim=0, correction=0) -> X.var(dim=0, correction=1)",
                "X.var(dim=0, correction=0) -> X.var(dim=0)", "X - mean -> X + mean", "X - mean -> X",
                "loss.backward() -> pass", "Z.detach() -> Z", "Z.detach().clone() -> Z.detach()",
                "loss.item(), stats -> [loss.item(), stats]", "2 -> 3",
                "centered = X - mean -> X -= mean centered = X"]:
        assert key in made, key
    assert any(k.startswith("with torch.no_grad():") for k in made)  # the block unwrapped
    signature = [m for m in cell_mutants("step", ANSWER) if m.line <= 3]
    assert signature == []  # only the solution region changes
    for mutant in cell_mutants("step", ANSWER):
        compile(mutant.source, "<mutant>", "exec")
        assert mutant.source.startswith('def step(model, opt, X, y, eps=1e-5):\n    """One training step."""')


def test_the_graded_slice_keeps_what_answers_and_tests_read():
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell("code", "import numpy as np\nimport matplotlib.pyplot as plt"),
                cell("code", "SCALE = 3"),
                cell("code", "def f(x):\n    ### BEGIN SOLUTION\n    return np.sqrt(x) * SCALE\n    ### END SOLUTION",
                     grade_id="f", solution=True),
                cell("code", "results = [f(i) for i in range(10**6)]\nplt.plot(results)"),
                cell("code", "assert f(4) == 6", grade_id="test_f", grade=True, locked=True, points=1)]
    kept = [c.source for c in graded_slice(nb).cells]
    assert kept == [nb.cells[i].source for i in (0, 1, 2, 4)]


def test_course_mutants_grades_each_mutant_and_honours_equivalents(tmp_path, capsys):
    course = make_course(tmp_path / "course")
    (course.root / "source" / LAB / "equivalent_mutants.json").write_text(json.dumps([
        {"cell": "add", "mutant": "a + b -> a", "reason": "only to show the exclusion"},
        {"cell": "add", "mutant": "a * b -> a", "reason": "names no mutant"}]))
    assert main(["--course-dir", str(course.root), "mutants", LAB, "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "tiny: 5/5 (100%) of the mutants killed, 2 marked equivalent" in out
    assert re.search(r"\badd\s+2/2 \(100%\)", out) and re.search(r"\bdouble\s+3/3 \(100%\)", out), out
    assert "names a mutant the solution no longer has: add: a * b -> a" in out


def test_an_equivalence_naming_two_mutants_at_once_is_refused():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x[0] + x[0, 0]\n    ### END SOLUTION"
    mutants = [m for m in cell_mutants("f", source) if m.key == "0 -> 1"]
    assert len(mutants) == 3  # x[0], and both indices of x[0, 0]
    report = MutationReport("lab", equivalent={"f: 0 -> 1": "said of one of them"})
    assert unknown_equivalents(report, mutants) == [
        "equivalent_mutants.json names 3 mutants at once: f: 0 -> 1 (write the solution so that each change is "
        "told apart, e.g. with a name for one of the values)"]
    assert unknown_equivalents(report, mutants[:1]) == []


def test_a_batch_tells_the_mutants_its_tests_catch_from_those_they_miss(tmp_path):
    """One kernel, three versions of `add`: the solution and an equivalent pass, a wrong one is killed."""
    course = make_course(tmp_path / "course")
    source = nbformat.read(course.source_notebook(LAB), as_version=4)
    bundle = bundle_from(LAB, source, course.release_notebook(LAB).read_text())
    job = GradeJob(lab=LAB, student="mutants", submission=nbformat.writes(source).encode(), release=bundle.release,
                   tests=bundle.tests, aliases=bundle.aliases, limits=Limits(cell_s=30), env=kernel_env())
    versions = [f"def add(a, b):\n    return {body}" for body in ("a + b", "b + a", "a - b")]
    try:
        assert run_batch(MutantBatch(job, "add", versions)) == [False, False, True]
    finally:
        close_local_resources()
