"""Does the nbgrader pipeline release, grade and validate a lab the way CI relies on?"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils.grading.cli import main
from course_utils.grading.course import Course, CourseError, find_course_root, notebook_errors, same_release
from course_utils.grading.pool import GradingPool
from course_utils.grading.validation import validate


def test_release_strips_solutions_hidden_tests_and_mistakes(tiny_course: Path):
    """Does the student version keep the visible test but lose the solution, the hidden tests and mistakes.py?"""
    Course(tiny_course).release("tiny")
    folder = tiny_course / "release" / "tiny"
    text = (folder / "tiny.ipynb").read_text()
    assert "raise NotImplementedError" in text
    assert "variance([1, 3]) == 2" in text
    assert "sum((x - mean) ** 2" not in text and "import statistics" not in text
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.ipynb"]


def test_validate_accepts_a_correct_lab_and_each_mistake_loses_its_tests(tiny_course: Path):
    """Does validation give the solution full marks, the untouched release zero, and the mistake exactly its tests?"""
    course = Course(tiny_course)
    course.release("tiny")
    with GradingPool(2) as pool:
        (report,) = validate(course, ["tiny"], pool)
    assert report.problems == []
    assert (report.reference.auto_score, report.reference.max_auto_score) == (3, 3)
    assert report.untouched.auto_score == 0


def test_validate_reports_a_stale_release_a_wrong_mistake_and_a_failing_solution(tiny_course: Path):
    """Does validation notice release/ drift, a mistake list that is wrong, and a solution that loses points?"""
    course = Course(tiny_course)
    course.release("tiny")
    released = course.release_notebook("tiny")
    nb = nbformat.read(released, as_version=4)
    nb.cells[0].source += " (edited by hand)"
    nbformat.write(nb, released)
    (tiny_course / "source" / "tiny" / "mistakes.py").write_text(
        (tiny_course / "source" / "tiny" / "mistakes.py").read_text().replace(
            '"test_variance_visible", "test_variance_hidden"', '"test_variance_visible"'))
    source = nbformat.read(course.source_notebook("tiny"), as_version=4)
    source.cells[1].source = source.cells[1].source.replace("(len(xs) - 1)", "(len(xs) - 1) + 0.0 * xs[0]")
    source.cells[2].source = source.cells[2].source.replace("== 2", "== 3")  # a wrong visible test
    nbformat.write(source, course.source_notebook("tiny"))
    with GradingPool(2) as pool:
        (report,) = validate(course, ["tiny"], pool)
    text = "\n".join(report.problems)
    assert "release/ is stale" in text and "course release tiny" in text
    assert "mistake 'biased' should lose exactly ['test_variance_visible']" in text
    assert "the solution loses points in test_variance_visible" in text
    assert not report.ok


def test_mistake_edit_that_does_not_apply_is_an_error(tiny_course: Path):
    """Does a mistake whose text is not in the solution cell fail loudly instead of grading the solution?"""
    course = Course(tiny_course)
    (mistake,) = course.mistakes("tiny")
    mistake.edits = {"variance": [("no such text", "x")]}
    with pytest.raises(CourseError, match="does not contain"):
        course.notebook_with_mistake("tiny", mistake)


def test_same_release_names_the_differing_cell(tmp_path: Path):
    """Does the release comparison say which notebook cell differs and which files are missing?"""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, text in [(a, "one"), (b, "two")]:
        folder.mkdir()
        cells = [nbformat.v4.new_markdown_cell("same", id="c0"), nbformat.v4.new_markdown_cell(text, id="c1")]
        nb = nbformat.v4.new_notebook(cells=cells)
        nbformat.write(nb, folder / "lab.ipynb")
    (a / "data.csv").write_text("x")
    problems = same_release(a, b)
    assert "missing data.csv" in problems
    assert any("lab.ipynb differs" in p and "cell 1" in p for p in problems)
    assert same_release(a, a) == []


def test_notebook_errors_lists_each_error_output():
    """Are error outputs reported with the grade_id of their cell?"""
    cell = nbformat.v4.new_code_cell("1/0")
    cell.metadata["nbgrader"] = {"grade_id": "test_x"}
    cell.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("ok"), cell])
    assert notebook_errors(nb) == ["test_x: ZeroDivisionError: division by zero"]


def test_find_course_root_walks_up_and_fails_clearly(tiny_course: Path, tmp_path: Path):
    """Is the course folder found from a subfolder, and is a folder outside any course refused with a hint?"""
    assert find_course_root(tiny_course / "source" / "tiny") == tiny_course.resolve()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(CourseError, match="nbgrader_config.py"):
        find_course_root(outside)


def test_cli_rejects_an_unknown_lab(tiny_course: Path, capsys):
    """Does `course release` name the known labs when given a wrong one, and exit non-zero?"""
    assert main(["--course-dir", str(tiny_course), "release", "tinny"]) == 1
    assert "Unknown lab(s) tinny; the labs are: tiny" in capsys.readouterr().err


def test_cli_validate_exit_code_follows_the_result(tiny_course: Path, capsys):
    """Does `course validate` print a table and exit 0 when the lab is sound, 1 when release/ is missing?"""
    assert main(["--course-dir", str(tiny_course), "validate", "tiny", "--workers", "2"]) == 1
    assert "missing tiny.ipynb" in capsys.readouterr().out
    assert main(["--course-dir", str(tiny_course), "release"]) == 0
    assert main(["--course-dir", str(tiny_course), "validate", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "3/3" in out and "validate: 1 passed, 0 failed" in out


def test_demo_grades_three_reference_students(tiny_course: Path, tmp_path: Path, capsys):
    """Does `course demo` grade the solution fully, the untouched release at zero and the mistake in between?"""
    into = tmp_path / "demo"
    assert main(["--course-dir", str(tiny_course), "demo", "--into", str(into)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in
            {"solution", "untouched", "typical_mistake"}}
    assert "3/3" in rows["solution"] and "0/3" in rows["untouched"] and "0/3" in rows["typical_mistake"]
    grades = (into / "grades.csv").read_text()
    assert grades.count("tiny,") == 3
    assert (into / "feedback" / "solution" / "tiny" / "tiny.html").is_file()


def test_demo_fails_when_a_reference_student_is_graded_wrong(tiny_course: Path, tmp_path: Path, capsys):
    """Does `course demo` exit non-zero when the typical mistake does not lose exactly its tests?"""
    mistakes = tiny_course / "source" / "tiny" / "mistakes.py"
    mistakes.write_text(mistakes.read_text().replace('"test_variance_visible", "test_variance_hidden"',
                                                     '"test_variance_visible"'))
    assert main(["--course-dir", str(tiny_course), "demo", "--into", str(tmp_path / "demo")]) == 1
    assert "the typical mistake should lose exactly ['test_variance_visible']" in capsys.readouterr().err


def test_course_runs_by_its_path_without_activating_the_environment(tiny_course: Path):
    """Does `.venv/bin/course` work when the environment is not on PATH (nbgrader starts alembic by name)?"""
    course = Path(sys.executable).parent / "course"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PATH")} | {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(course), "--course-dir", str(tiny_course), "release", "tiny"], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    out = subprocess.run([str(course), "--help"], capture_output=True, text=True, env=env, check=True).stdout
    for command in ["release", "validate", "grade", "demo"]:
        assert command in out
