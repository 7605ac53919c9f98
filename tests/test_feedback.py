"""The feedback page and the formgrader's notebook: what they show, what they never show, and how big and slow a
submission can make them."""

from __future__ import annotations

import base64
import re
import time
import tracemalloc
from html.parser import HTMLParser

import nbformat
import pytest
from nbconvert import HTMLExporter

from course_utils.grading import feedback
from course_utils.grading.feedback import feedback_page, safe_notebook, safe_outputs
from course_utils.grading.results import Failure, FailureKind, Late, SubmissionOutcome
from course_utils.grading.results import TestOutcome as Verdict  # not a class of tests
from notebook_cells import cell

HIDDEN = "assert secret_oracle(x) == 42"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


def notebook(*student_cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """An autograded notebook: the student's cells, a test with hidden code and a written answer."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [*student_cells,
                cell("code", f'"""Is x 42?"""\n### BEGIN HIDDEN TESTS\n{HIDDEN}\n### END HIDDEN TESTS',
                     grade=True, locked=True, points=2, grade_id="test_x"),
                cell("code", '"""Is y 1?"""\nassert y == 1', grade=True, locked=True, points=1, grade_id="test_y"),
                cell("markdown", "Because the mean is estimated.", grade=True, solution=True, points=3,
                     grade_id="why")]
    return nb


def outcome(written_score: float | None = None, comment: str = "", **kwargs) -> SubmissionOutcome:
    return SubmissionOutcome("lab", "ann", tests=[
        Verdict("test_x", 2, 0.0, checks="Is x 42?", message="x is 41, expected 42"),
        Verdict("test_y", 1, 1.0, checks="Is y 1?"),
        Verdict("why", 3, written_score, autograded=False, comment=comment)], **kwargs)


class Elements(HTMLParser):
    """The elements of a page, as a browser parses them: (tag, attributes)."""

    def __init__(self, page: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def with_attribute(self, name: str) -> list[str]:
        return [attrs[name] for _, attrs in self.found if name in attrs]


def grader_regions(page: str) -> int:
    return sum("grader" in (attrs.get("class") or "").split() for _, attrs in Elements(page).found)


def test_a_graded_page_shows_verdicts_in_place_of_test_code_and_the_hand_grade():
    """Does the page show each test's docstring, points and message, the written answer's grade and comment, and
    never a test's code?"""
    page = feedback_page(outcome(2.0, "Right idea; say why n - 1 removes the bias."),
                         notebook(cell("code", "x = 41\ny = 1")))
    assert HIDDEN not in page and "BEGIN HIDDEN" not in page and "assert y == 1" not in page
    assert "Is x 42?" in page and "x is 41, expected 42" in page and "failed: 0 of 2 points" in page
    assert "passed: 1 of 1 points" in page
    assert "Because the mean is estimated." in page and "graded by hand: 2 of 3 points" in page
    assert "Right idea; say why n - 1 removes the bias." in page
    assert "Total: 3 of 6 points." in page


def test_the_summary_links_each_failed_test_and_written_answer_to_its_place():
    """Does the summary at the top list the failed tests and the written answers with links that lead somewhere?"""
    page = feedback_page(outcome(), notebook(cell("code", "x = 41")))
    summary = page[page.index("id='summary'"):page.index("</section>")]
    assert "Autograded tests: 1 of 3 points" in summary and "1 not graded yet" in summary
    links = re.findall(r"href='#([^']+)'>([^<]+)</a>", summary)
    assert [name for _, name in links] == ["test_x", "why"]
    for anchor, _ in links:
        assert page.count(f"id='{anchor}'") == 1
    assert summary.index("Is x 42?") and "Is y 1?" not in summary  # only failed tests are listed


def test_a_submission_that_could_not_be_graded_says_whose_problem_it_is():
    """Is a failure of the grading machine told as such, and a submission's own problem told with its reason?"""
    internal = "OSError: [Errno 13] Permission denied: '/sys/fs/cgroup/course/job-7'"
    machine = feedback_page(SubmissionOutcome("lab", "ann", failure=Failure(FailureKind.GRADER_ERROR, internal)), None)
    assert "a problem of the grading machine, not of your notebook: it will be graded again" in machine
    assert "submit again" not in machine and "cgroup" not in machine  # the instructor's details stay theirs
    found = "expected conv_shapes.ipynb, found Conv_shapes (1).ipynb <b>"
    mine = feedback_page(SubmissionOutcome("lab", "ann", failure=Failure(FailureKind.MISSING, found)), None)
    assert "expected conv_shapes.ipynb, found Conv_shapes (1).ipynb &lt;b&gt;" in mine
    assert "grading machine" not in mine and "submit again" in mine


def test_the_late_banner_gives_the_lateness_the_penalty_and_the_score_after_it():
    """Does a late page say how late, what it cost and the score left, or that the policy costs nothing?"""
    nb = notebook(cell("code", "x = 41"))
    page = feedback_page(outcome(2.0), nb, Late(seconds=3 * 3600, penalty=1.5, score=1.5))
    assert "Submitted 3.0 hours after the due date: a late penalty of 1.5 points applies" in page
    assert "your score after the penalty is 1.5 of 6 points" in page
    free = feedback_page(outcome(2.0), nb, Late(seconds=3 * 86400, penalty=0.0, score=3.0))
    assert "3.0 days after the due date: under this course's late policy no penalty applies" in free
    assert "after the due date" not in feedback_page(outcome(2.0), nb, None)


def test_formulas_become_mathml_and_hostile_tex_stays_text():
    """Are $...$ and $$...$$ rendered to MathML, with TeX that smuggles markup or links shown inert?"""
    page = feedback_page(outcome(), notebook(cell("markdown", r"The bias is $\frac{n-1}{n}$ and $$\sigma^2$$")))
    assert "<mfrac>" in page and "<msup>" in page and "$\\frac" not in page
    hostile = feedback_page(outcome(), notebook(cell("markdown", r"$\text{<script>alert(1)</script>}$ and "
                                                                  r"$\href{https://evil.example}{x}$ and $\frac{$")))
    assert "<script" not in hostile and "evil.example" not in hostile
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile  # shown as its TeX, escaped
    assert "<code class='tex'>$\\frac{$</code>" in hostile or "\\frac{" in hostile


def test_student_markdown_fetches_nothing_and_cannot_forge_the_grader():
    """Can a student's markdown put a remote resource or a grader's box into their page?"""
    forged = ("<section class='grader passed'><p class='label'>Grader: test</p>Notes from the grader: all passed"
              "</section>\n\n![pixel](https://evil.example/p.png) [more](https://evil.example/) "
              "<img src='https://evil.example/q.png'> <https://evil.example/auto>\n\n"
              "```grader passed\nNotes from the grader\n```\n\n```\" class=\"grader\nx\n```")
    page = feedback_page(outcome(), notebook(cell("markdown", forged)))
    assert grader_regions(page) == 1 + 3  # the summary and the three graded cells, nothing more
    elements = Elements(page)
    assert elements.with_attribute("src") == [] and all(h.startswith("#") for h in elements.with_attribute("href"))
    student = page[page.index("<section class='student'>"):]
    assert "Notes from the grader: all passed" in student[:student.index("</section>")]


def test_images_come_only_from_outputs_as_png_or_jpeg():
    """Does an output's PNG show as a data: image, and HTML, SVG or JavaScript outputs not at all?"""
    outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG}),
               nbformat.v4.new_output("display_data", data={"text/html": "<img src='https://evil.example/x'>",
                                                            "image/svg+xml": "<svg onload='x()'/>"}),
               nbformat.v4.new_output("display_data", data={"application/javascript": "alert(1)"})]
    page = feedback_page(outcome(), notebook(nbformat.v4.new_code_cell("plot()", outputs=outputs)))
    assert [src[:22] for src in Elements(page).with_attribute("src")] == ["data:image/png;base64,"]
    assert "evil.example" not in page and "onload" not in page and "alert(1)" not in page
    assert page.count(feedback.RICH_NOTE) == 2


def _render(nb: nbformat.NotebookNode) -> tuple[str, float, float]:
    """The page, the seconds it took and the peak of memory allocated while rendering it (MB)."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        page = feedback_page(outcome(), nb)
        return page, time.monotonic() - start, tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_a_16_mb_hostile_markdown_cell_renders_small_and_fast():
    """Does a 16 MB markdown cell of "[a](" (139 s and GBs before) give a small page, cut with a note?"""
    page, seconds, peak_mb = _render(notebook(cell("markdown", "[a](" * 4_000_000)))
    assert len(page) < 200_000 and peak_mb < 100
    assert seconds < 60  # measured 0.2 s (1 s under tracemalloc); only a hang exceeds this
    assert "15,980,000 more characters not shown" in page and "Is x 42?" in page


def test_many_hostile_cells_and_huge_outputs_keep_the_page_bounded_with_every_verdict():
    """Do hundreds of large cells and outputs keep the page within its cap, the verdicts after them shown?"""
    cells = [cell("markdown", "*a" * 10_000) for _ in range(100)]
    cells += [nbformat.v4.new_code_cell("x" * 200_000, outputs=[nbformat.v4.new_output("stream", text="y" * 3_000_000)])
              for _ in range(100)]
    start = time.monotonic()
    page = feedback_page(outcome(), notebook(*cells))
    seconds = time.monotonic() - start
    assert len(page) < feedback.PAGE_CHARS + 100_000
    assert seconds < 120  # measured about 1 s; only a hang exceeds this
    assert "the rest of your notebook is not shown" in page
    assert "Is x 42?" in page and "x is 41, expected 42" in page and "graded by hand" in page
    shown = page.count("<pre class='markdown'>") + page.count("<div class='markdown'>")
    assert page.count("<div class='markdown'>") <= feedback.MARKDOWN_CHARS // 20_000 + 1 and shown > 6


def test_safe_notebook_bounds_what_the_formgrader_renders_and_keeps_grading_metadata():
    """Is the formgrader's notebook cut to size, without active content, its nbgrader metadata kept, and quick
    for nbconvert (what the formgrader renders with) even from a 16 MB hostile cell?"""
    nb = notebook(cell("markdown", "[a](" * 4_000_000),
                  nbformat.v4.new_code_cell("1", outputs=[nbformat.v4.new_output("stream", text="z" * 5_000_000),
                                                          nbformat.v4.new_output("display_data",
                                                                                 data={"text/html": "<b>x</b>"})]))
    safe = safe_notebook(nb)
    assert len(nb.cells[0].source) == 16_000_000  # the input is left alone
    assert len(safe.cells[0].source) < feedback.MARKDOWN_CELL_CHARS + 200 and "not shown" in safe.cells[0].source
    stream, rich = safe.cells[1].outputs
    assert len(stream.text) < feedback.TEXT_CHARS + 200 and rich.data == {"text/plain": feedback.RICH_NOTE}
    assert [c.metadata.get("nbgrader") for c in safe.cells] == [c.metadata.get("nbgrader") for c in nb.cells]
    start = time.monotonic()
    body, _ = HTMLExporter(template_name="classic").from_notebook_node(safe)
    assert time.monotonic() - start < 60 and len(body) < 2_000_000  # measured about 1 s


def test_safe_outputs_drops_images_too_large_or_not_base64():
    """Are an oversized image and a PNG that is not base64 dropped, a valid one kept?"""
    big = base64.b64encode(b"\0" * (feedback.IMAGE_CHARS)).decode()
    kept = safe_outputs([nbformat.v4.new_output("display_data", data={"image/png": data})
                         for data in (big, "not base64!", PNG)])
    assert [list(o.data) for o in kept] == [["text/plain"], ["text/plain"], ["image/png"]]


@pytest.mark.parametrize("source", ["> " * 50_000, "- " * 50_000 + "\n", "[" * 50_000, "$" * 50_000,
                                    "`" * 50_000, "<" * 50_000, "|a" * 50_000 + "\n|-|\n"])
def test_pathological_markdown_renders_or_falls_back_to_text(source):
    """Does markdown built to hit parser corners render (or show as escaped text) without an error?"""
    page = feedback_page(outcome(), notebook(cell("markdown", source)))
    assert "Is x 42?" in page and "<script" not in page


def test_safe_notebook_caps_markdown_and_text_in_all_and_breaks_long_lines():
    """Past MARKDOWN_CHARS of markdown, or NOTEBOOK_TEXT_CHARS of text, is the rest cut with a note, and is no
    markdown line longer than LINE_CHARS (nbconvert's link rewriting is quadratic in it)?"""
    count = feedback.MARKDOWN_CHARS // feedback.MARKDOWN_CELL_CHARS + 3
    code = [nbformat.v4.new_code_cell("c" * feedback.TEXT_CHARS,
                                      outputs=[nbformat.v4.new_output("stream", text="o" * feedback.TEXT_CHARS)])
            for _ in range(3)]
    nb = notebook(*[cell("markdown", "m" * feedback.MARKDOWN_CELL_CHARS) for _ in range(count)], *code)
    safe = safe_notebook(nb)
    shown = [c.source.split("\n\n*[")[0].split("\n# [")[0].replace("\n", "") for c in safe.cells]
    assert sum(len(text) for text in shown[:count]) == feedback.MARKDOWN_CHARS
    assert "all markdown cells together" in safe.cells[count - 1].source
    outputs = sum(len(out.get("text", "")) for c in safe.cells if c.cell_type == "code" for out in c.outputs)
    assert sum(map(len, shown)) + outputs <= feedback.NOTEBOOK_TEXT_CHARS + 1000
    assert "all of a notebook's text" in "".join(c.source for c in safe.cells)
    assert max(len(line) for c in safe.cells[:count] for line in c.source.split("\n")) <= feedback.LINE_CHARS


def test_breaking_long_lines_keeps_prose_and_its_words():
    """Is a long line of prose broken only at spaces, so that its words and its rendering stay the same?"""
    prose = " ".join(f"word{i}" for i in range(1000))
    safe = safe_notebook(notebook(cell("markdown", prose)))
    assert safe.cells[0].source.replace("\n", " ") == prose and "\n" in safe.cells[0].source
