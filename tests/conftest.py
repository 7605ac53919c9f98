"""Shared fixtures: a tiny course folder with one lab, built from scratch for each test that needs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from notebook_cells import cell

REPO = Path(__file__).resolve().parents[1]


def tiny_lab_notebook() -> nbformat.NotebookNode:
    """A lab with one exercise (an unbiased variance), a visible and a hidden test, and a written answer."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        cell("markdown", "# Tiny lab"),
        cell("code", '''
            def variance(xs):
                """Unbiased sample variance of a list of numbers."""
                ### BEGIN SOLUTION
                mean = sum(xs) / len(xs)
                return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
                ### END SOLUTION
            ''', grade=False, solution=True, locked=False, grade_id="variance"),
        cell("code", '''
            """Is the variance of [1, 3] equal to 2?"""
            assert variance([1, 3]) == 2, "variance([1, 3]) should be 2"
            ''', grade=True, solution=False, locked=True, points=1, grade_id="test_variance_visible"),
        cell("code", '''
            """Does variance match statistics.variance on other lists?"""
            ### BEGIN HIDDEN TESTS
            import statistics
            for xs in ([1, 2, 4], [0.5, -1, 2, 7]):
                assert abs(variance(xs) - statistics.variance(xs)) < 1e-12, f"wrong variance for {xs}"
            ### END HIDDEN TESTS
            ''', grade=True, solution=False, locked=True, points=2, grade_id="test_variance_hidden"),
        cell("markdown", "Why divide by n - 1?", grade=True, solution=True, locked=False, points=1,
              grade_id="why_n_minus_one", task=False),
    ]
    return nb


TINY_MISTAKES = '''
MISTAKES = [
    {
        "name": "biased",
        "explanation": "divides by n instead of n - 1",
        "edits": {"variance": [("/ (len(xs) - 1)", "/ len(xs)")]},
        "loses": ["test_variance_visible", "test_variance_hidden"],
    },
]
'''


@pytest.fixture
def tiny_course(tmp_path: Path) -> Path:
    """A course folder with the repo's nbgrader_config.py and one lab, `tiny`, not yet released."""
    root = tmp_path / "course"
    (root / "source" / "tiny").mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    nbformat.write(tiny_lab_notebook(), root / "source" / "tiny" / "tiny.ipynb")
    (root / "source" / "tiny" / "mistakes.py").write_text(TINY_MISTAKES)
    return root
