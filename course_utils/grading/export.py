"""grades.csv: one row per student and lab for an LMS gradebook, with each submission's status, per-cell points,
the late penalty and whether it was graded in a sandbox. A submission that was not graded has an empty score,
never 0; every cell is escaped so that a spreadsheet reads none as a formula."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from .course import Course
from .escape import for_csv
from .results import Status, SubmissionOutcome

NOT_SUBMITTED = "not submitted"
COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email", "status",
           "raw_score", "late_submission_penalty", "score", "max_score", "sandboxed"]


def state_folder(course: Course, lab: str) -> Path:
    """Where the classroom stores each graded submission's outcome, `grading/<lab>/state/`."""
    return course.root / "grading" / lab / "state"


def stored_outcomes(course: Course, lab: str) -> dict[str, SubmissionOutcome]:
    """The outcome stored for each student of `lab`; a record that cannot be read counts as none."""
    outcomes = {}
    folder = state_folder(course, lab)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            outcome = SubmissionOutcome.from_json(json.loads(path.read_text())["outcome"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        outcomes[outcome.student] = outcome
    return outcomes


def _cell_score(grade) -> float | None:
    """A graded cell's points in the gradebook, None while it waits for a person to grade it."""
    if grade.manual_score is None and (grade.needs_manual_grade or grade.auto_score is None):
        return None
    return float(grade.score)


def _rows(gb: Gradebook, course: Course) -> tuple[list[str], list[dict]]:
    cells, rows = [], []
    students = {s.id: s for s in gb.students}
    for assignment in gb.assignments:
        lab = assignment.name
        names = [f"{lab}:{c.name}" for nb in assignment.notebooks for c in nb.grade_cells]
        cells += names
        outcomes = stored_outcomes(course, lab)
        for student_id in sorted(set(students) | set(outcomes)):
            student, outcome = students.get(student_id), outcomes.get(student_id)
            try:
                submission = gb.find_submission(lab, student_id)
            except MissingEntry:
                submission = None
            status = outcome.status.value if outcome else Status.GRADED.value if submission else NOT_SUBMITTED
            row = {"assignment": lab, "student_id": student_id, "status": status,
                   "last_name": student.last_name if student else None,
                   "first_name": student.first_name if student else None,
                   "email": student.email if student else None, "max_score": assignment.max_score,
                   "duedate": submission.duedate if submission else assignment.duedate,
                   "timestamp": submission.timestamp if submission else None,
                   "sandboxed": None if outcome is None else "yes" if outcome.isolated else "no"}
            if status == Status.GRADED.value:
                row.update(_scores(lab, submission, outcome))
            rows.append(row)
    return cells, rows


def _scores(lab: str, submission, outcome: SubmissionOutcome | None) -> dict:
    """The points of a graded submission: from the gradebook (hand grades included), else its stored outcome."""
    if submission is None:
        tests = {f"{lab}:{t.grade_id}": t.score for t in outcome.tests}
        return {"raw_score": outcome.auto_score, "late_submission_penalty": 0.0, "score": outcome.auto_score, **tests}
    tests = {f"{lab}:{g.name}": _cell_score(g) for nb in submission.notebooks for g in nb.grades}
    penalty = submission.late_submission_penalty or 0.0
    return {"raw_score": submission.score, "late_submission_penalty": penalty,
            "score": max(0.0, submission.score - penalty), **tests}


def late_penalties(course: Course, lab: str) -> dict[str, float]:
    """The late penalty in the gradebook of each student of `lab` who has one."""
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        try:
            submissions = gb.assignment_submissions(lab)
        except MissingEntry:
            return {}
        return {s.student.id: s.late_submission_penalty for s in submissions if s.late_submission_penalty}


def write_grades(course: Course, path: Path | None = None) -> Path:
    """Write grades.csv (default: at the course root) from the gradebook and the stored outcomes; the file is
    replaced whole, so an interrupted export never leaves half of one."""
    path = Path(path) if path is not None else course.root / "grades.csv"
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        cells, rows = _rows(gb, course)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([for_csv(column) for column in COLUMNS + cells])
        for row in rows:
            writer.writerow([for_csv(row.get(column)) for column in COLUMNS + cells])
    os.replace(tmp, path)
    return path
