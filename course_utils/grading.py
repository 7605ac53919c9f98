"""Autograde every submission of a lab, then export grades and per-student feedback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .pipeline import Course, CourseError, SubmissionResult


@dataclass
class GradeOutcome:
    """One student's result, or the reason their submission could not be graded."""

    student: str
    result: SubmissionResult | None
    failure: str | None = None


def grade_lab(course: Course, lab: str, students: list[str] | None = None) -> list[GradeOutcome]:
    """Autograde `submitted/*/<lab>/` one student at a time; one broken submission never stops the rest."""
    students = students if students is not None else course.submitted_students(lab)
    if not students:
        raise CourseError(f"Nothing to grade: no folder submitted/<student>/{lab}/ in {course.root}.")
    outcomes = []
    for student in tqdm(students, desc=f"grading {lab}", unit="student"):
        try:
            result = course.autograde(lab, student)
            course.generate_feedback(lab, student)
            outcomes.append(GradeOutcome(student, result))
        except CourseError as err:
            outcomes.append(GradeOutcome(student, None, str(err).splitlines()[0]))
    return outcomes


def grades_csv(course: Course) -> Path:
    """Export the whole gradebook to `grades.csv` at the course root."""
    return course.export_grades(course.root / "grades.csv")
