"""Reading a student's submission as data, without trusting the file system it sits in.

Below the course's submitted folder nothing is followed or opened unless it is what it should be: every folder
on the way and every file is opened relative to its parent's descriptor with O_NOFOLLOW, checked with fstat,
and refused (FailureKind.UNSAFE_FILE) when it is a symbolic link, a device, a FIFO, a socket, or a folder where a
file belongs. Files are read with a size cap. A refusal's reason names what was found, never what it points to
or holds.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .escape import for_terminal
from .results import Failure, FailureKind

if TYPE_CHECKING:
    from .course import Course

NOTEBOOK_CAP = 20 * 2**20  # bytes: a larger notebook is refused unread
TIMESTAMP_CAP = 256  # bytes of timestamp.txt
TIMESTAMP_FILE = "timestamp.txt"
FOUND_SHOWN = 8  # names listed in "found ..." before "and N more"
# A time zone nbgrader's parse_utc may look up: a name under the zoneinfo folder, never a path of its own
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*|[+-]?\d{1,4}")


@dataclass(frozen=True)
class Submission:
    """One student's submission of one lab: the notebook's bytes and the time it was submitted, or why not.

    `found` names what the lab folder (or the deepest folder reached) holds, escaped for a terminal."""

    notebook: bytes | None
    timestamp: datetime | None
    failure: Failure | None
    found: list[str] = field(default_factory=list)


class _Refused(Exception):
    def __init__(self, failure: Failure, found: list[str] | None = None):
        super().__init__(str(failure))
        self.failure, self.found = failure, found or []


_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY


def _what(mode: int) -> str:
    """What a file-system entry is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a file" if stat.S_ISREG(mode) else "a special file"


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _listing(fd: int) -> list[str]:
    """The names in an open folder (timestamp.txt aside), escaped, sorted, at most FOUND_SHOWN of them."""
    names = sorted(n for n in os.listdir(fd) if n != TIMESTAMP_FILE)
    shown = [for_terminal(n, 80) for n in names[:FOUND_SHOWN]]
    return shown + ([f"and {len(names) - FOUND_SHOWN} more"] if len(names) > FOUND_SHOWN else [])


def _open_folder(parent: int, name: str, what: str) -> int:
    """Open the folder `name` under `parent`, refusing anything that is not a real folder."""
    st = _lstat(parent, name)
    if st is None:
        seen = _listing(parent) if what == "lab folder" else []  # never other students' names
        raise _Refused(Failure(FailureKind.MISSING, f"no {what} {for_terminal(name, 80)}"
                               + (f", found {', '.join(seen)}" if seen else "")), seen)
    if not stat.S_ISDIR(st.st_mode):
        raise _Refused(Failure(FailureKind.UNSAFE_FILE if not stat.S_ISREG(st.st_mode) else FailureKind.MISSING,
                               f"the {what} {for_terminal(name, 80)} is {_what(st.st_mode)}, not a folder"))
    try:
        fd = os.open(name, _NOFOLLOW | os.O_DIRECTORY, dir_fd=parent)
    except OSError:  # replaced between the check and the open
        raise _Refused(Failure(FailureKind.UNSAFE_FILE, f"the {what} {for_terminal(name, 80)} changed while read")) \
            from None
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise _Refused(Failure(FailureKind.UNSAFE_FILE, f"the {what} {for_terminal(name, 80)} is not a folder"))
    return fd


def _read_file(parent: int, name: str, cap: int, too_large: FailureKind) -> bytes | None:
    """The bytes of the regular file `name` under `parent` (None when absent), at most `cap` of them."""
    shown = for_terminal(name, 80)
    st = _lstat(parent, name)
    if st is None:
        return None
    if not stat.S_ISREG(st.st_mode):  # refused before opening: opening a device or FIFO can act on it
        raise _Refused(Failure(FailureKind.UNSAFE_FILE, f"{shown} is {_what(st.st_mode)}, not a file; it was not read"))
    try:
        fd = os.open(name, _NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
    except OSError:
        raise _Refused(Failure(FailureKind.UNSAFE_FILE, f"{shown} changed while read; it was not read")) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Refused(Failure(FailureKind.UNSAFE_FILE, f"{shown} is {_what(st.st_mode)}, not a file"))
        if st.st_size > cap:
            raise _Refused(Failure(too_large, f"{shown} is larger than {_size(cap)}"))
        chunks, left = [], cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > cap:  # it grew while read
            raise _Refused(Failure(too_large, f"{shown} is larger than {_size(cap)}"))
        return data
    finally:
        os.close(fd)


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


def parse_date(text: str, what: str = TIMESTAMP_FILE) -> datetime | None:
    """A date as nbgrader reads timestamp.txt (`nbgrader.utils.parse_utc`: naive UTC), None when blank; ValueError
    naming `what` when it is not a date. A time zone must be a zone name or an offset, never a path (nbgrader
    would open it)."""
    from nbgrader.utils import parse_utc

    text = text.strip()
    if not text:
        return None
    parts = text.split(" ")
    if len(parts) == 3 and not _ZONE.fullmatch(parts[2]):
        raise ValueError(f"{what} names no time zone nbgrader knows: '{for_terminal(parts[2], 40)}'")
    try:
        return parse_utc(text)
    except (ValueError, OverflowError, TypeError, AttributeError):
        raise ValueError(f"{what} does not hold a date: '{for_terminal(text, 60)}'") from None


def read_submission(course: "Course", student: str, lab: str) -> Submission:
    """Read `student`'s notebook of `lab` and its timestamp.txt, refusing whatever is unsafe or unreadable."""
    coursedir = course.coursedir
    folder = course.folder("submitted", lab, student)
    base = Path(coursedir.root) / coursedir.submitted_directory  # the instructor's: links above here are theirs
    if not folder.is_relative_to(base):
        base = Path(coursedir.root)
    parts = folder.relative_to(base).parts
    if student in ("", ".", "..") or "/" in student or "\0" in student:
        return Submission(None, None, Failure(FailureKind.MISSING, f"'{for_terminal(student, 80)}' is not a student "
                                                                   "id"), [])
    expected = f"{lab}.ipynb"
    try:
        top = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return Submission(None, None, Failure(FailureKind.MISSING, "nothing submitted"), [])
    fds = [top]
    try:
        for depth, name in enumerate(parts):
            what = "lab folder" if depth == len(parts) - 1 else "student folder" if name == student else "folder"
            fds.append(_open_folder(fds[-1], name, what))
        found = _listing(fds[-1])
        notebook = _read_file(fds[-1], expected, NOTEBOOK_CAP, FailureKind.NOT_A_NOTEBOOK)
        if notebook is None:
            seen = f"found {', '.join(found)}" if found else "the folder is empty"
            raise _Refused(Failure(FailureKind.MISSING, f"expected {expected}, {seen}"), found)
        raw = _read_file(fds[-1], TIMESTAMP_FILE, TIMESTAMP_CAP, FailureKind.MALFORMED_FILE)
        try:
            timestamp = None if raw is None else parse_date(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _Refused(Failure(FailureKind.MALFORMED_FILE, f"{TIMESTAMP_FILE} is not UTF-8 text"), found) from None
        except ValueError as err:
            raise _Refused(Failure(FailureKind.MALFORMED_FILE, str(err)), found) from None
        return Submission(notebook, timestamp, None, found)
    except _Refused as refused:
        return Submission(None, None, refused.failure, refused.found)
    finally:
        for fd in fds:
            os.close(fd)
