"""Does the flake hunt find the seeds for which a hidden test fails the solution, and do those seeds fail it in the
sandboxed grader too?"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import flakes
from course_utils.grading.course import Course
from notebook_cells import cell
from processes import adopt_orphans, wait_for_none

REPO = Path(__file__).resolve().parents[1]
LAB = "seeded"
UNLUCKY = 5  # a hidden test fails for every seed divisible by this


def flaky_test(name: str) -> nbformat.NotebookNode:
    return cell("code", f'''
        """Does mean average random lists?"""
        assert mean([1, 3]) == 2, "mean([1, 3]) should be 2"
        ### BEGIN HIDDEN TESTS
        import random
        seed = cu.testing.fresh_seed()
        xs = [random.Random(seed).uniform(-1, 1) for _ in range(5)]
        assert abs(mean(xs) - sum(xs) / 5) < 1e-12, f"wrong mean for {{xs}}"
        assert seed % {UNLUCKY} != 0, "an unlucky seed"
        ### END HIDDEN TESTS
        ''', grade=True, locked=True, points=1, grade_id=name)


@pytest.fixture
def course(tmp_path: Path) -> Course:
    """A released lab whose two hidden tests fail the solution for one seed in five; one typical mistake."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    answer = "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION"
    nb.cells = [cell("code", "import course_utils as cu"), cell("code", answer, grade_id="mean", solution=True),
                flaky_test("test_first"), flaky_test("test_second")]
    root = tmp_path / "course"
    (root / "source" / LAB).mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    nbformat.write(nb, root / "source" / LAB / f"{LAB}.ipynb")
    (root / "source" / LAB / "mistakes.py").write_text(
        'MISTAKES = [{"name": "halved", "explanation": "divides by twice the length", '
        '"edits": {"mean": [("/ len(xs)", "/ (2 * len(xs))")]}, "loses": ["test_first", "test_second"]}]\n')
    made = Course(root)
    made.release(LAB)
    return made


def test_repeat_finds_exactly_the_failing_seeds_and_reproduces_them(course):
    nb, should_fail = flakes.variants(course, LAB, mistakes=False)[flakes.SOLUTION]
    first = flakes.repeat(nb, should_fail, runs=100, seconds=60, only=["test_first"])
    [record] = first
    assert record.runs == 100 and not record.should_fail
    assert 5 <= len(record.unexpected) <= 40  # one run in five, give or take
    assert all(len(seeds) == 1 and seeds[0] % UNLUCKY == 0 and message == "an unlucky seed"
               for seeds, message in record.unexpected)
    again = flakes.repeat(nb, should_fail, runs=100, seconds=60, only=["test_first"])
    assert again[0].unexpected == record.unexpected
    other = flakes.repeat(nb, should_fail, runs=100, seconds=60, only=["test_first"], base=1)
    assert other[0].unexpected != record.unexpected


def test_a_mistake_must_lose_its_tests_under_every_seed(course):
    found = flakes.variants(course, LAB, mistakes=True)
    assert set(found) == {flakes.SOLUTION, "halved"}
    nb, should_fail = found["halved"]
    records = flakes.repeat(nb, should_fail, runs=30, seconds=60)
    assert [(r.grade_id, r.should_fail, r.runs, r.unexpected) for r in records] == [
        ("test_first", True, 30, []), ("test_second", True, 30, [])]


def test_the_grader_fails_the_seeds_that_repeat_found_and_only_those(course):
    adopt_orphans()
    nb, should_fail = flakes.variants(course, LAB, mistakes=False)[flakes.SOLUTION]
    [record] = flakes.repeat(nb, should_fail, runs=50, seconds=60, only=["test_second"])
    unlucky = record.unexpected[0][0]
    verdicts = flakes.confirm(course, LAB, nb, {"test_first": [UNLUCKY * 12345 + 1], "test_second": unlucky})
    assert verdicts == {"test_first": "", "test_second": "an unlucky seed"}
    assert wait_for_none(0) == []  # the zygote the job started has ended, as after a grading pool


def test_the_command_exits_non_zero_on_a_flake_and_names_an_unknown_test(course, monkeypatch, capsys):
    monkeypatch.chdir(course.root)
    assert flakes.main([LAB, "--runs", "40"]) == 1
    out = capsys.readouterr().out
    assert "test_first" in out and "must pass" in out and "an unlucky seed" in out
    assert flakes.main([LAB, "--test", "test_third"]) == 2
    assert "No test cell 'test_third'" in capsys.readouterr().err
