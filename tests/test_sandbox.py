"""The grading sandbox's file system and its fail-closed checks, and how a submission is rebuilt on the release."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import sandbox
from course_utils.grading.classroom import grade_lab
from course_utils.grading.cli import main
from course_utils.grading.course import CourseError
from course_utils.grading.export import write_grades
from course_utils.grading.client import Outputs
from course_utils.grading.jobs import GradeJob, JobKernel, Limits, import_aliases, rebuild
from course_utils.grading.pool import GradingPool, close_local_resources
from grading_fixtures import LAB, make_course, source_notebook, submissions, submit


def _binds(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == "--ro-bind"]


def test_the_course_is_not_mounted_but_an_environment_inside_it_is(tmp_path, monkeypatch):
    """Only the environment, the package (its grading part covered) and the data are bound: not the course, and
    nothing else of sys.path (a Dask worker puts its scratch folder there)."""
    course = tmp_path / "course"
    for folder in ("course/.venv/lib", "course/course_utils/grading", "course/tests", "shared/data", "scratch"):
        (tmp_path / folder).mkdir(parents=True)
    monkeypatch.setattr(sandbox, "_environment", lambda: {str(course / ".venv")})
    monkeypatch.setattr(sandbox, "package_path", lambda: str(course / "course_utils"))
    monkeypatch.setattr("sys.path", [str(course), str(course / "tests"), str(tmp_path), str(tmp_path / "scratch")])
    paths = sandbox.read_only_paths([str(tmp_path / "shared/data")])
    assert paths == sorted([str(course / ".venv"), str(course / "course_utils"), str(tmp_path / "shared/data")])
    args = sandbox.bwrap_arguments(paths, [str(course)], 2**20)
    binds = _binds(args)
    assert str(course / ".venv") in binds and str(course / "course_utils") in binds
    assert str(course) not in binds and str(tmp_path) not in binds  # nor anything above the course
    assert args[args.index(str(course / "course_utils/grading")) - 1] == "--tmpfs"
    assert args[args.index("--unshare-all") + 1:].count("--tmpfs") == 4 and "--die-with-parent" in args
    assert args[args.index("--uid") + 1] == "1000" and ["--cap-drop", "ALL"] == args[args.index("--cap-drop"):][:2]
    own = sandbox.bwrap_arguments(paths, [str(course)], 2**20, userns=7)
    assert own[:2] == ["--userns", "7"] and "--unshare-all" not in own and "--uid" not in own


def test_the_instructor_oracles_are_covered_wherever_they_are_installed():
    """Installed without -e, `course_oracles` sits in site-packages, which the sandbox binds: it must be covered
    like the grader's own package, and left alone where nothing bound holds it."""
    import course_oracles

    oracles = str(Path(course_oracles.__file__).resolve().parent)
    assert oracles in sandbox.hidden_paths([str(Path(oracles).parent)])
    assert sandbox.hidden_paths([sandbox.package_path()]) == [str(Path(sandbox.package_path()) / "grading")]


def test_a_denied_folder_inside_a_system_folder_is_covered():
    args = sandbox.bwrap_arguments([], ["/usr/share/course"], 2**20)
    assert "/usr" in _binds(args) and args[args.index("/usr/share/course") - 1] == "--tmpfs"


def test_this_machine_can_make_sandboxes():
    assert sandbox.check_isolation() is None


def test_a_kernel_runs_from_an_environment_inside_the_course_and_reads_data_under_the_temp_folder(tmp_path):
    """The README's set-up puts .venv inside the course folder: the course stays hidden, its environment works."""
    course = Path(sys.prefix).parent  # the folder holding this environment plays the course folder
    data = tmp_path / "data"
    data.mkdir()
    (data / "numbers.txt").write_text("42")
    job = GradeJob(lab="t", student="s", submission=b"", release="", tests={}, aliases={},
                   limits=Limits(cell_s=120, memory_mb=2048), env={"COURSE_DATA_ROOT": str(data)},
                   denied=[str(course)])
    kernel = JobKernel(job)
    try:
        outputs = Outputs()
        kernel.client.execute(f"""
import os, torch, IPython, course_utils.checks
print(open(os.path.join(os.environ["COURSE_DATA_ROOT"], "numbers.txt")).read())
print(sorted(os.listdir({str(course)!r})))
""", time.monotonic() + 120, outputs)
        printed = "".join(o.get("text", "") for o in outputs.items)
        assert outputs.error() is None, outputs.items
        visible = set(eval(printed.splitlines()[1]))
        assert printed.splitlines()[0] == "42"
        assert visible <= {Path(sys.prefix).name, "course_utils"}, visible  # nothing else of the course
    finally:
        kernel.close()
        close_local_resources()


def test_without_bubblewrap_grading_stops_with_what_is_missing(tmp_path, monkeypatch, capsys):
    course = make_course(tmp_path / "course")
    submit(course, {"good": submissions(course)["good"]})
    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
    with pytest.raises(CourseError, match="bubblewrap"):
        GradingPool(1)
    assert main(["--course-dir", str(course.root), "grade", LAB]) == 1
    assert "apt-get install bubblewrap" in capsys.readouterr().err


def test_no_isolation_grades_and_marks_every_grade(tmp_path, monkeypatch, capsys):
    course = make_course(tmp_path / "course")
    files = submissions(course)
    submit(course, {s: files[s] for s in ("good", "wrong")})
    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)  # as on a machine without bubblewrap
    assert main(["--course-dir", str(course.root), "grade", LAB, "--workers", "1", "--no-isolation"]) == 0
    out = capsys.readouterr().out
    assert "WITHOUT a sandbox" in out and out.count("[graded WITHOUT a sandbox]") == 2
    assert "graded without a sandbox (--no-isolation)" in (course.root / "grading" / LAB / "summary.md").read_text()
    with open(write_grades(course)) as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert rows["good"]["sandboxed"] == "no" and float(rows["good"]["raw_score"]) == 3
    assert float(rows["wrong"]["raw_score"]) == 1
    monkeypatch.undo()
    again = grade_lab(course, LAB, workers=1, limits=Limits(cell_s=30), progress=False)
    assert all(not o.reused and o.isolated for o in again)  # a sandboxed run regrades unsandboxed work


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
    assert rebuilt.cells[order.index("why_easy") + 1].source == "scratch = 1"  # stays after the cell it followed
    assert [c.source for c in rebuilt.cells[:order.index("add")]] == [c.source for c in release.cells[:2]]


def test_import_aliases():
    found = import_aliases(["import numpy as np\nimport torch\nfrom torch import nn\n"
                            "from course_utils.checks import check_close as cc\nimport os.path", "not python ("])
    assert found == {"np": "numpy", "torch": "torch", "nn": "torch:nn", "cc": "course_utils.checks:check_close",
                     "os": "os"}
