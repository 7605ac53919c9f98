"""Returning feedback after hand grading: every student's page rewritten from the gradebook, with the autograded
tests and the hand-graded written answers (score and the grader's comment) together, never a hidden test.

nbgrader's `generate_feedback` would render its own page from the autograded notebook; this writes ours, from
the stored outcome of `course grade` and the grades people gave in the formgrader, to the same place.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry, SubmittedNotebook
from nbgrader.preprocessors import AssignLatePenalties

from .course import Course, CourseError
from .export import stored_outcomes
from .feedback import feedback_page
from .results import Late, SubmissionOutcome, TestOutcome


def with_hand_grades(outcome: SubmissionOutcome, notebook: SubmittedNotebook) -> SubmissionOutcome:
    """`outcome` with the gradebook's word on every graded cell: a person's score where one was given (also one
    that overrides a test's), each written answer's score (None while it waits for a person) and comment."""
    grades = {grade.name: grade for grade in notebook.grades}
    comments = {comment.name: comment.comment or "" for comment in notebook.comments}
    autograded = {t.grade_id for t in outcome.tests if t.autograded}
    written = {}
    for name, grade in grades.items():
        if name in autograded:
            continue
        score = grade.manual_score if grade.manual_score is not None else (
            None if grade.needs_manual_grade else grade.auto_score)
        written[name] = TestOutcome(name, float(grade.max_score), None if score is None else float(score),
                                    autograded=False, comment=comments.get(name, ""))
    tests = []
    for test in outcome.tests:
        grade = grades.get(test.grade_id)
        if test.autograded and grade is not None and grade.manual_score is not None:
            test = dataclasses.replace(test, score=float(grade.manual_score))
        elif not test.autograded:
            test = written.pop(test.grade_id, test)
        tests.append(test)
    return dataclasses.replace(outcome, tests=tests + list(written.values()))


def late_penalty(course: Course, student: str, seconds: float, notebook: SubmittedNotebook) -> Late | None:
    """The late penalty on the notebook's score now, hand grades included, by the course's late policy
    (`c.LateSubmissionPlugin.penalty_method`), recorded in the gradebook as `nbgrader autograde` records it."""
    if seconds <= 0:
        notebook.late_submission_penalty = None
        return None
    assigner = AssignLatePenalties(config=course.config)
    assigner.init_plugin()
    penalty = assigner.plugin_inst.late_submission_penalty(student, notebook.score, seconds)
    notebook.late_submission_penalty = None if penalty is None else min(max(penalty, 0.0), notebook.score)
    taken = notebook.late_submission_penalty or 0.0
    return Late(seconds=seconds, penalty=taken, score=notebook.score - taken)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # atomic: a student's browser never sees half a page


def return_feedback(course: Course, lab: str, students: list[str] | None = None) -> list[Path]:
    """(Re)write the feedback page of each student graded by `course grade` (or of `students`) from the gradebook,
    hand grades and comments included, where nbgrader's `generate_feedback` puts it; returns the pages written.
    Every page is rendered, and the late penalties recomputed, before any page is written."""
    stored = stored_outcomes(course, lab)
    chosen = students if students is not None else sorted(stored)
    missing = [student for student in chosen if student not in stored]
    if missing:
        raise CourseError(f"No grade of {lab} recorded for {', '.join(missing)}: run `course grade {lab}` first.")
    outcomes = {student: stored[student] for student in chosen}
    pages: dict[Path, str] = {}
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        for student, outcome in outcomes.items():
            late, notebook = None, None
            if outcome.failure is None:
                try:
                    submission = gb.find_submission(lab, student)
                    record = gb.find_submission_notebook(lab, lab, student)
                except MissingEntry as err:
                    raise CourseError(f"{student}'s {lab} is not in the gradebook: run `course grade {lab}`.") from err
                outcome = with_hand_grades(outcome, record)
                late = late_penalty(course, student, submission.total_seconds_late, record)
                notebook = _autograded(course, lab, student)
            pages[course.feedback_page(lab, student)] = feedback_page(outcome, notebook, late)
        gb.db.commit()
    for page, text in pages.items():
        _write(page, text)
    return list(pages)


def _autograded(course: Course, lab: str, student: str) -> nbformat.NotebookNode:
    path = course.autograded_notebook(lab, student)
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError) as err:
        raise CourseError(f"{student}'s autograded notebook {path} cannot be read ({err}): grade {lab} again.") from err
