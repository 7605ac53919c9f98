"""Instructor-only reference implementations and oracles of the labs' graded exercises and predictions.

Hidden tests import them inside their hidden part (`import course_oracles as co`, then `co.attacks.l2_step`);
they run in the referee, in the instructor's process, never in a student's kernel or in what students receive
(`course bundle`), so no answer ships with the course. Modules mirror the `course_utils` modules whose labs they
grade, and load on first use.
"""

from __future__ import annotations

from course_utils.lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
