"""Building nbgrader notebook cells for the fixture labs that tests make themselves."""

from __future__ import annotations

import textwrap

import nbformat


def cell(kind: str, source: str, **nbgrader) -> nbformat.NotebookNode:
    """A code or markdown cell; nbgrader metadata (schema 3, flags off unless given) when any is passed."""
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    made = make(textwrap.dedent(source).strip())
    if nbgrader:
        made.metadata["nbgrader"] = {"schema_version": 3, "locked": False, "solution": False, "grade": False,
                                     **nbgrader}
    return made
