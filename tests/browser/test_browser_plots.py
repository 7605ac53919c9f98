"""Figures in JupyterLab: matplotlib plots show as images, plotly figures as live, interactive charts."""

from __future__ import annotations

import pytest

import lab_notebooks as ln
from lab_server import require_browser

require_browser()

from lab_ui import click_menu, open_in_lab  # noqa: E402 (needs Playwright, checked just above)
from playwright.sync_api import Locator, Page, expect  # noqa: E402

IMAGE_OUTPUT = f".jp-OutputArea-output[data-mime-type='{ln.IMAGE_MIME}'] img"
PLOTLY_OUTPUT = ".jp-OutputArea .js-plotly-plot"  # jupyterlab-plotly draws the figure with plotly.js


def solution(lab: str):
    return ln.read(ln.REPO / "source" / lab / f"{lab}.ipynb")


def labs_with_figures() -> list:
    """Every lab whose committed solution run drew a figure, and the plotly lab once it exists."""
    labs = [lab for lab in ln.release_labs() if lab == ln.PLOTLY_LAB or any(ln.figure_counts(solution(lab)))]
    params = [pytest.param(lab, id=lab) for lab in labs]
    if ln.PLOTLY_LAB not in labs:
        params.append(pytest.param(ln.PLOTLY_LAB, id=ln.PLOTLY_LAB, marks=pytest.mark.skip(
            reason=f"release/{ln.PLOTLY_LAB}/ does not exist yet; its plotly figure is checked once that lab is merged")))
    return params


def hover_until_label(page: Page, figure: Locator) -> bool:
    """Move the mouse over a plotly figure's plot area until plotly draws a hover label."""
    area = figure.locator(".nsewdrag").first
    box = (area if area.count() else figure).bounding_box()
    label = figure.locator(".hoverlayer .hovertext")
    steps = 16
    for row in range(1, steps):
        for col in range(1, steps):
            page.mouse.move(box["x"] + box["width"] * col / steps, box["y"] + box["height"] * row / steps)
            if label.count():
                return True
    return False


@pytest.mark.parametrize("lab", labs_with_figures())
def test_solution_figures_render_in_jupyterlab(lab, lab_server, page, shoot):
    images, plotly = ln.figure_counts(solution(lab))
    if lab == ln.PLOTLY_LAB:
        assert plotly >= 1, f"the committed run of source/{lab}/{lab}.ipynb shows no plotly figure"
    nb = open_in_lab(page, lab_server.lab_url(f"figures-{lab}", f"solutions/{lab}/{lab}.ipynb"))
    click_menu(page, "Run", "Run All Cells")
    nb.wait_all_ran()
    for i, cell in enumerate(ln.read(lab_server.root / "solutions" / lab / f"{lab}.ipynb").cells):
        if cell.cell_type == "code":
            assert ln.last_error(nb.outputs(i)) is None, f"cell {i} of the solution failed:\n{nb.outputs(i)}"

    drawn = nb.panel.locator(IMAGE_OUTPUT)
    expect(drawn).to_have_count(images)
    for k in range(images):
        width = drawn.nth(k).evaluate("img => img.complete ? img.naturalWidth : 0")
        assert width > 100, f"matplotlib figure {k + 1} of {lab} is not a visible image"
    if images:
        drawn.first.scroll_into_view_if_needed()
        shoot(page, f"{lab}-figure-matplotlib")

    charts = nb.panel.locator(PLOTLY_OUTPUT)
    expect(charts).to_have_count(plotly)
    if plotly:
        chart = charts.first
        chart.scroll_into_view_if_needed()
        assert hover_until_label(page, chart), f"hovering {lab}'s plotly figure shows no data label"
        expect(chart.locator(".modebar")).to_be_visible()  # plotly's zoom / pan / save toolbar
        shoot(page, f"{lab}-figure-plotly-hover")
