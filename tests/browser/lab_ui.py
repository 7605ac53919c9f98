"""Drive JupyterLab's notebook page in Playwright the way a person does: click, type, Shift+Enter, menus."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

KERNEL_START_S = 120  # a cold kernel importing torch on a busy two-core machine
RUN_S = 300  # nbgrader_config.py allows a cell five minutes

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
PROMPT_NUMBER = re.compile(r"\[(\d+)\]")
KERNEL_IDLE = re.compile(r"^(?!No Kernel).* \| Idle$")  # the status bar's kernel item, e.g. "Python 3 (ipykernel) | Idle"


class Notebook:
    """One open notebook in a JupyterLab page; cells are addressed by their index in the .ipynb file."""

    def __init__(self, page: Page):
        self.page = page
        self.panel = page.locator(NOTEBOOK)

    def cell(self, index: int) -> Locator:
        return self.panel.locator(f".jp-Notebook-cell[data-windowed-list-index='{index}']")

    def source(self, index: int) -> str:
        """The text of a cell's editor: its whole document (CodeMirror draws only the lines near the screen, so a
        long cell's drawn lines are not all of it), or the drawn lines where the editor's view is not reachable."""
        editor = self.cell(index).locator(".cm-content")
        return editor.evaluate("e => e.cmView && e.cmView.view ? e.cmView.view.state.doc.toString() : "
                               "Array.from(e.querySelectorAll('.cm-line'), l => l.textContent).join('\\n')")

    def outputs(self, index: int) -> str:
        """Everything a code cell's output area shows, as text."""
        return self.cell(index).locator(".jp-OutputArea").inner_text()

    def execution_count(self, index: int) -> int:
        """The number in the cell's `[n]:` prompt (0 for a cell never run)."""
        found = PROMPT_NUMBER.search(self.cell(index).locator(".jp-InputPrompt").inner_text())
        return int(found.group(1)) if found else 0

    def wait_kernel_idle(self, timeout_s: float = KERNEL_START_S) -> None:
        """Wait until the status bar reports a started kernel with nothing left to run."""
        status = self.page.locator(".jp-StatusBar-TextItem", has_text=KERNEL_IDLE)
        expect(status).to_be_visible(timeout=timeout_s * 1000)

    def select(self, index: int) -> None:
        """Select a cell in command mode, by clicking its prompt area as a person would."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Escape")
        expect(cell).to_have_class(re.compile(r"\bjp-mod-active\b"))

    def replace_source(self, index: int, text: str) -> None:
        """Click into a cell's editor, select everything in it and type `text` over it."""
        editor = self.cell(index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.press("Delete")
        # insert_text enters the text in one input event, like a paste: the editor adds no
        # auto-indentation or closing brackets of its own, which typing key by key would.
        self.page.keyboard.insert_text(text)
        assert self.source(index) == text, f"the editor holds {self.source(index)!r} instead of the answer typed"

    def run_cells(self, first: int, last: int, timeout_s: float = RUN_S) -> None:
        """Select cell `first` and press Shift+Enter until cell `last` has run; wait for its result."""
        before = self.execution_count(last)
        self.select(first)
        for _ in range(first, last + 1):
            self.page.keyboard.press("Shift+Enter")
        self.wait_ran(last, before, timeout_s)

    def wait_ran(self, index: int, before: int, timeout_s: float = RUN_S) -> None:
        """Wait until cell `index` shows an execution count above `before` and the kernel is idle."""
        prompt = self.cell(index).locator(".jp-InputPrompt")
        self.page.wait_for_function(
            "([el, before]) => { const m = el.textContent.match(/\\[(\\d+)\\]/); return m && +m[1] > before; }",
            arg=[prompt.element_handle(), before], timeout=timeout_s * 1000)
        self.wait_kernel_idle(timeout_s)

    def wait_all_ran(self, timeout_s: float = RUN_S) -> None:
        """After "Run All Cells": wait until every code cell has run or one shows an error."""
        self.page.wait_for_function(
            """panel => {
                const prompts = Array.from(panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt'));
                const ran = prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
                const outputs = Array.from(panel.querySelectorAll('.jp-OutputArea'));
                return ran || outputs.some(o => o.innerText.includes('Traceback'));
            }""", arg=self.panel.element_handle(), timeout=timeout_s * 1000)
        self.wait_kernel_idle(timeout_s)

    def scroll_to_bottom_of(self, locator: Locator) -> None:
        """Scroll so that the end of `locator` (e.g. an error's last line) is on screen."""
        locator.evaluate("e => e.scrollIntoView({block: 'end'})")


def click_menu(page: Page, *path: str) -> None:
    """Open a menu of JupyterLab's menu bar and click through `path`, e.g. ("Run", "Run All Cells")."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{re.escape(path[0])}$")).click()
    for label in path[1:]:
        item_label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(label)}$"))
        page.locator(".lm-Menu:visible .lm-Menu-item", has=item_label).click()


def open_in_lab(page: Page, url: str) -> Notebook:
    """Open a notebook URL in JupyterLab and wait until its kernel is ready."""
    page.goto(url)
    notebook = Notebook(page)
    expect(notebook.panel.locator(".jp-Notebook-cell").first).to_be_visible(timeout=KERNEL_START_S * 1000)
    notebook.wait_kernel_idle()
    return notebook
