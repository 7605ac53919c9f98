"""What `course release` does beyond nbgrader's defaults: instructor-only cells and run leftovers never ship.

A cell tagged `instructor` (the checks of a narrative's claims, notes for the grader) stays in the source
notebook and is removed from the student version, and the leftovers of the instructor's run (widget state,
each cell's execution timestamps) are dropped, so a new run of the source changes no released byte. nbgrader_config.py adds `InstructorOnly` to nbgrader's release steps.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

INSTRUCTOR_TAG = "instructor"
KEPT_METADATA = ("kernelspec", "language_info")


class InstructorOnly(Preprocessor):
    """Remove cells tagged `instructor`, every notebook metadata key but the kernel's, and cells' timestamps."""

    enabled = Bool(True)

    def preprocess(self, nb, resources):
        nb.cells = [c for c in nb.cells if INSTRUCTOR_TAG not in c.get("metadata", {}).get("tags", [])]
        for key in [k for k in nb.metadata if k not in KEPT_METADATA]:
            del nb.metadata[key]
        for cell in nb.cells:
            cell.get("metadata", {}).pop("execution", None)
        return nb, resources
