"""Does the `course` command answer fast without heavy imports, grade only whom it is asked to, end an interrupted
run with one line and the right exit status, and print nothing a submission wrote raw to the terminal?"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from course_utils.grading import classroom
from course_utils.grading.cli import EXIT_HANGUP, EXIT_INTERRUPTED, grade_table, main
from course_utils.grading.results import Failure, FailureKind, GradingInterrupted, Note, NoteKind, SubmissionOutcome, \
    TestOutcome
from grading_fixtures import LAB, make_course, submissions, submit

HEAVY = ("torch", "nbgrader", "nbformat", "dask", "distributed", "matplotlib", "jsonschema")


def run_cli(args: list[str]) -> tuple[int, list[str], str]:
    """Run `main(args)` in a fresh interpreter: its exit status, the heavy modules it imported, its output."""
    code = ("import sys, json\nfrom course_utils.grading.cli import main\n"
            f"try:\n    rc = main({args!r})\nexcept SystemExit as e:\n    rc = e.code\n"
            f"print(json.dumps([rc, [m for m in {HEAVY!r} if m in sys.modules]]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    rc, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    return rc, heavy, done.stdout + done.stderr


def test_help_and_argument_errors_import_nothing_heavy():
    rc, heavy, out = run_cli(["--help"])
    assert rc == 0 and heavy == [] and "grade" in out and "export" in out
    rc, heavy, out = run_cli(["grade", "tiny", "--workers", "many"])
    assert rc == 2 and heavy == [] and "invalid int value" in out


def test_nothing_to_grade_is_said_before_any_worker_starts(tiny_course):
    rc, heavy, out = run_cli(["--course-dir", str(tiny_course), "grade", "tiny"])
    assert rc == 1 and "Nothing to grade" in out
    assert "distributed" not in heavy and "torch" not in heavy


def test_a_student_without_a_submission_is_refused_by_name(tiny_course, capsys):
    (tiny_course / "submitted" / "ada" / "tiny").mkdir(parents=True)
    assert main(["--course-dir", str(tiny_course), "grade", "tiny", "--student", "bob"]) == 1
    assert "bob" in capsys.readouterr().err


def interrupted_grade_lab(number: int):
    """A stand-in for grade_lab that is stopped by `number` the way the real one is: its own handler turns the
    signal into KeyboardInterrupt and the run ends with GradingInterrupted."""
    def grade_lab(course, lab, students=None, **kwargs):
        def stop(*_):
            raise KeyboardInterrupt
        previous = signal.signal(number, stop)
        try:
            os.kill(os.getpid(), number)
            time.sleep(5)  # the handler runs at once
            raise AssertionError("the signal was not delivered")
        except KeyboardInterrupt:
            raise GradingInterrupted(lab, 3, 7) from None
        finally:
            signal.signal(number, previous)
    return grade_lab


@pytest.mark.parametrize("number, status", [(signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGHUP, EXIT_HANGUP)])
def test_an_interrupted_run_ends_with_one_line_and_the_signal_s_status(tiny_course, monkeypatch, capsys, number,
                                                                         status):
    (tiny_course / "submitted" / "ada" / "tiny").mkdir(parents=True)
    monkeypatch.setattr(classroom, "grade_lab", interrupted_grade_lab(number))
    monkeypatch.setattr("course_utils.grading.export.write_grades", lambda course, path=None: path)
    assert main(["--course-dir", str(tiny_course), "grade", "tiny"]) == status
    captured = capsys.readouterr()
    assert captured.err.strip() == "interrupted: 3 graded, 7 left: run `course grade tiny` again to finish"
    assert "Traceback" not in captured.out + captured.err


def test_a_hang_up_outside_grading_ends_as_an_interruption(tiny_course, monkeypatch, capsys):
    def hang_up(course, path=None):
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(5)
    monkeypatch.setattr("course_utils.grading.export.write_grades", hang_up)
    assert main(["--course-dir", str(tiny_course), "export"]) == EXIT_HANGUP
    assert capsys.readouterr().err.strip() == "course export: interrupted"


def test_the_grade_table_shows_status_penalty_and_notes_escaped():
    graded = SubmissionOutcome(LAB, "ada", [TestOutcome("test_add", 2, 0), TestOutcome("test_double", 1, 1)],
                               notes=[Note(NoteKind.CELL_TIMEOUT, "cell 3 \x1b[2J")], isolated=False)
    missing = SubmissionOutcome(LAB, "b\x1b[1Aob", failure=Failure(FailureKind.MISSING, "expected tiny.ipynb, "
                                                                                       "found Tiny (1).ipynb"))
    lines = grade_table(LAB, [graded, missing], {"ada": 0.5}).splitlines()
    assert "\x1b" not in "\n".join(lines)
    assert lines[2].split()[:5] == ["ada", "graded", "1/3", "-0.5", "tests"]
    assert "cell time limit: cell 3 \\x1b[2J" in lines[2] and "[graded WITHOUT a sandbox]" in lines[2]
    assert lines[3].split()[:3] == ["b\\x1b[1Aob", "missing", "-"] and "found Tiny (1).ipynb" in lines[3]


def test_an_extension_is_parsed_as_nbgrader_reads_dates(tiny_course, capsys):
    assert main(["--course-dir", str(tiny_course), "extend", "tiny", "ada", "2026-03-10 17:00:00 Europe/Berlin"]) == 0
    assert json.loads((tiny_course / "grading" / "tiny" / "extensions.json").read_text()) == \
        {"ada": "2026-03-10T16:00:00"}
    assert "ada may submit tiny until 2026-03-10 16:00:00 UTC" in capsys.readouterr().out
    assert main(["--course-dir", str(tiny_course), "extend", "tiny", "ada", "next week"]) == 1
    assert "UNTIL does not hold a date" in capsys.readouterr().err
    assert main(["--course-dir", str(tiny_course), "extend", "tiny", "ada", "none"]) == 0
    assert json.loads((tiny_course / "grading" / "tiny" / "extensions.json").read_text()) == {}


def test_a_bundle_of_an_unreleased_lab_or_into_an_existing_folder_is_refused(tiny_course, capsys):
    assert main(["--course-dir", str(tiny_course), "bundle", str(tiny_course / "out")]) == 1
    assert "course bundle: no release of tiny" in capsys.readouterr().err
    assert main(["--course-dir", str(tiny_course), "bundle", str(tiny_course)]) == 1
    assert "already exists" in capsys.readouterr().err


def statuses(course_root: Path) -> dict[str, dict[str, str]]:
    with open(course_root / "grades.csv", newline="") as f:
        return {r["student_id"]: r for r in csv.DictReader(f)}


def test_grading_a_class_then_one_student(tmp_path, capsys):
    """One run over honest, renamed, hostile and linked submissions, then `--student` regrades only one."""
    course = make_course(tmp_path / "course")
    files = submissions(course)
    submit(course, {"good": files["good"], "wrong": files["wrong"]})
    renamed = course.root / "submitted" / "renamed" / LAB
    renamed.mkdir(parents=True)
    (renamed / "Tiny (1).ipynb").write_bytes(files["good"])
    escapes = json.loads(files["good"])
    escapes["nbformat"] = "\x1b[2J\x1b[H\x1b]0;owned\x07"
    submit(course, {"escapes": json.dumps(escapes).encode()})
    linked = course.root / "submitted" / "linked" / LAB
    linked.mkdir(parents=True)
    (linked / f"{LAB}.ipynb").symlink_to(course.source_notebook(LAB))
    root = str(course.root)

    assert main(["--course-dir", root, "grade", LAB, "--workers", "1"]) == 0
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err
    rows = {line.split()[0]: line for line in out.out.splitlines() if line.split()[:1] and line.split()[0] in
            ("good", "wrong", "renamed", "escapes", "linked")}
    assert rows["good"].split()[1:3] == ["graded", "3/3"] and rows["wrong"].split()[1:3] == ["graded", "1/3"]
    assert "missing" in rows["renamed"] and "found Tiny (1).ipynb" in rows["renamed"]
    assert "not a notebook" in rows["escapes"] and "unsafe file" in rows["linked"]
    grades = statuses(course.root)
    assert grades["good"]["status"] == "graded" and float(grades["good"]["score"]) == 3
    assert grades["renamed"]["status"] == "missing" and grades["renamed"]["score"] == ""
    assert grades["linked"]["status"] == "unsafe file" and grades["linked"]["score"] == ""

    state = course.root / "grading" / LAB / "state"
    before = {p.name: p.stat().st_mtime_ns for p in state.glob("*.json")}
    assert main(["--course-dir", root, "grade", LAB, "--workers", "1", "--student", "wrong"]) == 0
    table = capsys.readouterr().out
    assert "wrong" in table and "good " not in table and "unchanged since the last run" not in table
    after = {p.name: p.stat().st_mtime_ns for p in state.glob("*.json")}
    assert [name for name in after if after[name] != before[name]] == ["wrong.json"]

    assert main(["--course-dir", root, "feedback", LAB, "--student", "good"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"feedback/good/{LAB}/{LAB}.html",
                                                    f"feedback: 1 page(s) of {LAB} written"]
    assert main(["--course-dir", root, "export", str(tmp_path / "out.csv")]) == 0
    assert (tmp_path / "out.csv").read_text() == (course.root / "grades.csv").read_text()
    assert main(["--course-dir", root, "bundle", str(tmp_path / "bundle")]) == 0
    assert (tmp_path / "bundle" / "labs" / LAB / f"{LAB}.ipynb").is_file()


@pytest.mark.parametrize("number, status", [(signal.SIGHUP, EXIT_HANGUP), (signal.SIGINT, EXIT_INTERRUPTED)])
def test_a_signal_mid_run_ends_with_one_line_and_its_exit_status(tmp_path, number, status):
    course = make_course(tmp_path / "course")
    submit(course, {f"s{i}": submissions(course)["good"] for i in range(4)})
    state = course.root / "grading" / LAB / "state"
    run = subprocess.Popen([sys.executable, "-m", "course_utils.grading.cli", "--course-dir", str(course.root),
                            "grade", LAB, "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(state.glob("*.json")) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        run.send_signal(number)
        out, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == status, err[-3000:]
    assert "Traceback" not in out + err
    (line,) = [line for line in err.splitlines() if line.startswith("interrupted:")]
    graded, left = (int(word) for word in line.split() if word.isdigit())
    assert graded >= 1 and left >= 1 and graded + left == 4
    assert line.endswith(f"left: run `course grade {LAB}` again to finish")
    assert len(list(state.glob("*.json"))) == graded
