"""A student's session in JupyterLab: read the release notebook, answer an exercise, run its test, validate."""

from __future__ import annotations

import pytest

import lab_notebooks as ln
from lab_server import require_browser

require_browser()

from lab_ui import open_in_lab  # noqa: E402 (needs Playwright, checked just above)
from playwright.sync_api import expect  # noqa: E402


@pytest.mark.parametrize("lab", ln.release_labs())
def test_student_answers_an_exercise_and_reads_the_test_feedback(lab, lab_server, page, shoot):
    release = ln.read(ln.REPO / "release" / lab / f"{lab}.ipynb")
    exercise = ln.first_exercise_with_mistake(lab)
    nb = open_in_lab(page, lab_server.lab_url(f"student-{lab}", f"student/{lab}/{lab}.ipynb"))

    # The notebook shows every TODO stub, every written-answer placeholder and every visible test.
    expect(nb.panel.locator(".jp-Notebook-cell")).to_have_count(len(release.cells))
    for i, cell in enumerate(release.cells):
        if ln.is_stub(cell):
            shown = nb.source(i)
            assert "# YOUR CODE HERE" in shown and "raise NotImplementedError()" in shown, f"cell {i} shows {shown!r}"
        elif ln.is_written_answer(cell):
            expect(nb.cell(i)).to_contain_text("YOUR ANSWER HERE")
        elif ln.has_visible_asserts(cell):
            assert nb.source(i) == cell.source, f"visible test in cell {i} is not shown as released"
    nb.cell(exercise.cell).scroll_into_view_if_needed()
    shoot(page, f"{lab}-1-release-notebook")

    # A correct answer (after the earlier ones, predictions included): run the notebook down to the exercise's
    # visible test, which passes.
    for index, answer in exercise.earlier:
        nb.replace_source(index, answer)
    nb.replace_source(exercise.cell, exercise.answer)
    nb.run_cells(0, exercise.test)
    for i in range(exercise.test + 1):
        if release.cells[i].cell_type == "code":
            assert ln.last_error(nb.outputs(i)) is None, f"cell {i} failed with a correct answer:\n{nb.outputs(i)}"
    nb.scroll_to_bottom_of(nb.cell(exercise.test))
    shoot(page, f"{lab}-2-visible-test-passes")

    # nbgrader's Validate button saves the notebook and runs all of it: the answered exercise's tests
    # pass, the next exercise, still a stub, is reported.
    nb.panel.locator(".validate-button").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_have_text("Validation Results", timeout=300_000)
    report = dialog.locator(".jp-Dialog-body").inner_text()
    shoot(page, f"{lab}-3-validate")
    assert ln.first_line(release.cells[exercise.test]) not in report, f"validate says the answered test fails:\n{report}"
    if exercise.next_test is not None:
        assert "The following cell failed" in report and exercise.next_test in report, report
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    expect(dialog).to_have_count(0)

    # A typical wrong answer: the same visible test now fails with a message meant for the student.
    nb.replace_source(exercise.cell, exercise.wrong_answer)
    nb.run_cells(exercise.cell, exercise.test)
    assert ln.last_error(nb.outputs(exercise.cell)) is None, nb.outputs(exercise.cell)
    error = ln.last_error(nb.outputs(exercise.test))
    assert error is not None, f"the test passed a wrong answer that {exercise.mistake}"
    name, message = error
    assert name == "AssertionError" and len(message.split()) >= 5, f"students read {name}: {message!r}"
    nb.scroll_to_bottom_of(nb.cell(exercise.test))
    shoot(page, f"{lab}-4-visible-test-fails")
