"""Does reading a submission refuse every symbolic link, special file and oversize file, and say what was found?"""

from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path

import pytest

from course_utils.grading import submissions
from course_utils.grading.course import Course
from course_utils.grading.results import FailureKind
from course_utils.grading.submissions import read_submission

LAB = "tiny"
NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
SECRET = "SECRET-CONTENT-42"


@pytest.fixture
def course(tiny_course: Path) -> Course:
    return Course(tiny_course)


def folder(course: Course, student: str = "ada") -> Path:
    path = course.root / "submitted" / student / LAB
    path.mkdir(parents=True, exist_ok=True)
    return path


def submit(course: Course, student: str = "ada", data: bytes = NOTEBOOK) -> Path:
    path = folder(course, student) / f"{LAB}.ipynb"
    path.write_bytes(data)
    return path


def refused(course: Course, student: str = "ada") -> str:
    """The reason an unsafe submission was refused; it must never quote the target's content."""
    sub = read_submission(course, student, LAB)
    assert sub.notebook is None and sub.failure is not None
    assert sub.failure.kind is FailureKind.UNSAFE_FILE, sub.failure
    assert SECRET not in str(sub.failure)
    return sub.failure.detail


def test_a_plain_submission_is_read_with_its_timestamp(course):
    path = submit(course)
    (path.parent / "timestamp.txt").write_text("2026-03-01 12:30:00.000000 UTC")
    sub = read_submission(course, "ada", LAB)
    assert sub.failure is None and sub.notebook == NOTEBOOK
    assert sub.timestamp == datetime(2026, 3, 1, 12, 30)
    assert sub.found == [f"{LAB}.ipynb"]


def test_a_timestamp_with_an_offset_is_converted_to_utc(course):
    path = submit(course)
    (path.parent / "timestamp.txt").write_text("2026-03-01T12:30:00+02:00")
    assert read_submission(course, "ada", LAB).timestamp == datetime(2026, 3, 1, 10, 30)


@pytest.mark.parametrize("target", ["source notebook", "classmate", "instructor file", "etc shadow", "dangling"])
def test_a_notebook_that_is_a_symbolic_link_is_refused_unread(course, target):
    classmate = submit(course, "grace", NOTEBOOK.replace(b"[]", b'[{"cell_type": "markdown"}]'))
    secret = course.root / "nbgrader_config.py"
    secret.write_text(f"# {SECRET}\n" + secret.read_text())
    shadow = course.root / "shadow"  # a stand-in for /etc/shadow: a root-only file
    shadow.write_text(SECRET)
    shadow.chmod(0o600)
    targets = {"source notebook": course.source_notebook(LAB), "classmate": classmate, "instructor file": secret,
               "etc shadow": Path("/etc/shadow") if Path("/etc/shadow").exists() else shadow,
               "dangling": course.root / "nowhere.ipynb"}
    (folder(course) / f"{LAB}.ipynb").symlink_to(targets[target])
    assert refused(course) == f"{LAB}.ipynb is a symbolic link, not a file; it was not read"


@pytest.mark.parametrize("level", ["lab folder", "student folder"])
def test_a_folder_on_the_way_that_is_a_symbolic_link_is_refused(course, level):
    classmate = submit(course, "grace").parent
    if level == "lab folder":
        (course.root / "submitted" / "ada").mkdir(parents=True)
        (course.root / "submitted" / "ada" / LAB).symlink_to(classmate)
    else:
        (course.root / "submitted" / "ada").symlink_to(classmate.parent)
    assert refused(course).startswith(f"the {level} ")
    assert "is a symbolic link, not a folder" in refused(course)


@pytest.mark.parametrize("target", ["dangling", "a file", "a folder"])
def test_a_lab_folder_that_is_a_link_is_listed_so_that_it_gets_a_status(course, target):
    """Listing the class never follows a link: a lab folder that is one, to anything, is listed and refused."""
    targets = {"dangling": course.root / "nowhere", "a file": course.root / "nbgrader_config.py",
               "a folder": submit(course, "grace").parent}
    (course.root / "submitted" / "ada").mkdir(parents=True)
    (course.root / "submitted" / "ada" / LAB).symlink_to(targets[target])
    assert "ada" in course.submitted_students(LAB)
    assert "is a symbolic link" in refused(course)


def test_a_fifo_as_the_notebook_is_refused_without_blocking(course):
    os.mkfifo(folder(course) / f"{LAB}.ipynb")
    assert "is a named pipe (FIFO)" in refused(course)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_as_the_notebook_is_refused_unopened(course):
    os.mknod(folder(course) / f"{LAB}.ipynb", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers
    assert "is a device" in refused(course)


def test_a_socket_or_folder_as_the_timestamp_is_refused(course):
    path = submit(course)
    (path.parent / "timestamp.txt").mkdir()
    assert "timestamp.txt is a folder" in refused(course)


def test_a_timestamp_that_is_a_symbolic_link_is_refused(course):
    path = submit(course)
    (path.parent / "timestamp.txt").symlink_to(course.root / "nbgrader_config.py")
    assert "timestamp.txt is a symbolic link" in refused(course)


def test_an_oversize_notebook_is_not_a_notebook_and_read_no_further(course, monkeypatch):
    monkeypatch.setattr(submissions, "NOTEBOOK_CAP", 1000)
    submit(course, data=b" " * 1001)
    sub = read_submission(course, "ada", LAB)
    assert sub.failure.kind is FailureKind.NOT_A_NOTEBOOK
    assert sub.failure.detail == f"{LAB}.ipynb is larger than 1000 bytes"
    submit(course, data=b" " * 1000)
    assert read_submission(course, "ada", LAB).failure is None


def test_the_default_cap_is_stated_in_mib(course):
    with open(folder(course) / f"{LAB}.ipynb", "wb") as f:
        f.truncate(submissions.NOTEBOOK_CAP + 1)  # sparse: nothing is written
    assert read_submission(course, "ada", LAB).failure.detail == f"{LAB}.ipynb is larger than 20 MiB"


@pytest.mark.parametrize("text", ["not a date", "2026-13-45 99:00:00", "2026-03-01 12:00:00 /etc/shadow",
                                  "2026-03-01 12:00:00 ../../../tmp/zone", "\x1b[2J2026"])
def test_a_malformed_timestamp_fails_that_submission_with_its_reason(course, text):
    path = submit(course)
    (path.parent / "timestamp.txt").write_text(text)
    sub = read_submission(course, "ada", LAB)
    assert sub.notebook is None and sub.failure.kind is FailureKind.MALFORMED_FILE
    assert "timestamp.txt" in sub.failure.detail
    assert "\x1b" not in sub.failure.detail


def test_an_empty_timestamp_means_no_time_as_in_nbgrader(course):
    path = submit(course)
    (path.parent / "timestamp.txt").write_text("  \n")
    sub = read_submission(course, "ada", LAB)
    assert sub.failure is None and sub.timestamp is None


def test_a_renamed_notebook_is_missing_and_names_what_was_found(course):
    (folder(course) / "Tiny (1).ipynb").write_bytes(NOTEBOOK)
    (folder(course) / "timestamp.txt").write_text("2026-03-01 12:00:00 UTC")
    sub = read_submission(course, "ada", LAB)
    assert sub.failure.kind is FailureKind.MISSING
    assert sub.failure.detail == f"expected {LAB}.ipynb, found Tiny (1).ipynb"
    assert sub.found == ["Tiny (1).ipynb"]


def test_an_empty_lab_folder_says_so(course):
    folder(course)
    assert read_submission(course, "ada", LAB).failure.detail == f"expected {LAB}.ipynb, the folder is empty"


def test_a_missing_lab_folder_names_the_student_s_other_folders_but_never_other_students(course):
    submit(course, "grace")
    (course.root / "submitted" / "ada" / "Tiny").mkdir(parents=True)
    assert read_submission(course, "ada", LAB).failure.detail == "no lab folder tiny, found Tiny"
    failure = read_submission(course, "nobody", LAB).failure
    assert failure.kind is FailureKind.MISSING and "grace" not in failure.detail


def test_found_names_are_escaped_for_a_terminal(course):
    (folder(course) / "\x1b]0;pwned\x07x.ipynb").write_bytes(NOTEBOOK)
    sub = read_submission(course, "ada", LAB)
    assert sub.found == ["\\x1b]0;pwned\\x07x.ipynb"]
    assert "\x1b" not in sub.failure.detail


@pytest.mark.parametrize("student", ["../ada", "..", ""])
def test_a_student_id_that_is_a_path_is_refused(course, student):
    submit(course)
    sub = read_submission(course, student, LAB)
    assert sub.notebook is None and sub.failure.kind is FailureKind.MISSING
