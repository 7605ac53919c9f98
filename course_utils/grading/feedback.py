"""What a graded notebook shows to people: a feedback page for the student, a safe notebook for the formgrader.

Nothing a submission produced reaches a browser as active content or as a remote resource, and nothing it
holds can make rendering slow or large. The page is built from escaped text, markdown rendered with raw HTML
escaped and links and images shown as plain text, formulas converted to MathML here (no script runs), and PNG
or JPEG images from outputs; per test it shows what the test checks (its docstring), its points and its
message, never its code. The grader's words (the summary, verdicts, hand grades) sit in regions a student's
markdown cannot produce; the student's cells sit in delimited blocks. Every size is capped with a visible note.
"""

from __future__ import annotations

import base64
import binascii
import copy
import html
import xml.etree.ElementTree as ElementTree

import mistune
import nbformat
from latex2mathml.converter import convert as latex_to_mathml

from .results import Blame, FailureKind, Late, SubmissionOutcome, TestOutcome

MARKDOWN_CELL_CHARS = 20_000  # of one markdown cell; the labs' longest is 2,500 (mistune takes ~7 us a char)
MARKDOWN_CHARS = 100_000  # rendered as markdown per notebook (5 times a whole lab's); the rest shows as text
TEXT_CHARS = 100_000  # of one code cell's source, one text output or one traceback
IMAGE_CHARS = 2_000_000  # of one image, base64 (a matplotlib figure is about 50,000)
PAGE_CHARS = 10_000_000  # of a submission's content on one page
NOTEBOOK_TEXT_CHARS = 500_000  # of sources and text outputs in the formgrader's notebook (a lab's: about 60,000)
FORMULA_CHARS = 2_000  # of one formula converted to MathML; longer ones show as their TeX
LINE_CHARS = 1_000  # of one markdown line for the formgrader (the labs' longest is 189): nbconvert's link
# rewriting takes time quadratic in a line's length

SAFE_MIME = ("image/png", "image/jpeg", "text/plain", "text/latex")
RICH_NOTE = "[rich output (HTML, JavaScript, SVG or a widget) removed by the grader]"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_ADVICE = {
    FailureKind.MISSING: "Submit your notebook under the name the lab gave it, in the lab's folder.",
    FailureKind.NOT_A_NOTEBOOK: "Submit the .ipynb file that Jupyter saved, not another file renamed.",
    FailureKind.WRONG_LAB: "Submit this lab's notebook: the one released for it.",
    FailureKind.UNSAFE_FILE: "Submit plain files only: no symbolic links or special files.",
    FailureKind.MALFORMED_FILE: "Submit again, leaving the files beside your notebook as the submission made them.",
}


def _cut(text: str, limit: int) -> tuple[str, int]:
    """`text` cut to `limit` characters, and how many were cut."""
    return (text, 0) if len(text) <= limit else (text[:limit], len(text) - limit)


def _cut_note(count: int, what: str, limit: int) -> str:
    return f"[{count:,} more characters not shown: the grader shows at most {limit:,} of {what}]"


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


# Outputs, for the autograded notebook and for the page


def _valid(mime: str, value) -> bool:
    if not isinstance(value, str):
        return False
    if mime.startswith("image/"):
        if len(value) > IMAGE_CHARS:
            return False
        try:
            base64.b64decode(value.replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            return False
    return True


def safe_outputs(outputs: list) -> list:
    """`outputs` without active content and within size: only text, LaTeX and PNG/JPEG images stay, each text cut
    to TEXT_CHARS and each image at most IMAGE_CHARS."""
    kept = []
    for out in outputs:
        kind = out.get("output_type")
        if kind in ("display_data", "execute_result"):
            data = {k: v for k, v in out.get("data", {}).items() if k in SAFE_MIME and _valid(k, v)}
            for mime in ("text/plain", "text/latex"):
                if mime in data:
                    text, over = _cut(data[mime], TEXT_CHARS)
                    data[mime] = text + ("\n" + _cut_note(over, "an output", TEXT_CHARS) if over else "")
            if not data:
                data = {"text/plain": RICH_NOTE}
            out = nbformat.from_dict({**out, "data": data, "metadata": {}})
        elif kind == "stream":
            text, over = _cut(_text(out.get("text", "")), TEXT_CHARS)
            out = nbformat.from_dict({**out, "text": text + ("\n" + _cut_note(over, "an output", TEXT_CHARS) if over
                                                             else "")})
        elif kind == "error":
            lines, left = [], TEXT_CHARS
            for line in out.get("traceback", []):
                line = _text(line)[:left]
                lines.append(line)
                left -= len(line)
                if left <= 0:
                    break
            out = nbformat.from_dict({**out, "ename": _text(out.get("ename", ""))[:1000],
                                      "evalue": _cut(_text(out.get("evalue", "")), TEXT_CHARS)[0], "traceback": lines})
        kept.append(out)
    return kept


def _short_lines(text: str) -> str:
    """`text` with each line longer than LINE_CHARS broken, at a space where there is one: a soft line break in
    markdown, so prose renders as before."""
    lines = []
    for line in text.split("\n"):
        while len(line) > LINE_CHARS:
            space = line.rfind(" ", 1, LINE_CHARS)
            lines.append(line[:space] if space > 0 else line[:LINE_CHARS])
            line = line[space + 1:] if space > 0 else line[LINE_CHARS:]
        lines.append(line)
    return "\n".join(lines)


def _output_chars(out: dict) -> int:
    return (len(_text(out.get("text", ""))) + sum(len(_text(line)) for line in out.get("traceback", []))
            + sum(len(_text(value)) for mime, value in out.get("data", {}).items() if mime.startswith("text/")))


def safe_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the autograded notebook that the formgrader can show safely and quickly: outputs as
    `safe_outputs` keeps them; sources cut to TEXT_CHARS a cell (MARKDOWN_CELL_CHARS a markdown cell, and
    MARKDOWN_CHARS of markdown in all), sources and text outputs to NOTEBOOK_TEXT_CHARS in all, each cut with a
    note saying so; markdown lines broken at LINE_CHARS."""
    nb = copy.deepcopy(nb)
    text_left, markdown_left = NOTEBOOK_TEXT_CHARS, MARKDOWN_CHARS
    for cell in nb.cells:
        caps = [(TEXT_CHARS, "a cell", TEXT_CHARS), (text_left, "all of a notebook's text", NOTEBOOK_TEXT_CHARS)]
        if cell.cell_type == "markdown":
            caps += [(MARKDOWN_CELL_CHARS, "a markdown cell", MARKDOWN_CELL_CHARS),
                     (markdown_left, "all markdown cells together", MARKDOWN_CHARS)]
        left, what, limit = min(caps)
        text, over = _cut(_text(cell.get("source", "")), max(0, left))
        note = _cut_note(over, what, limit) if over else ""
        text_left -= len(text)
        if cell.cell_type == "markdown":
            markdown_left -= len(text)
            cell.source = _short_lines(text) + (f"\n\n*{note}*" if note else "")
        elif cell.cell_type == "code":
            cell.source = text + (f"\n# {note}" if note else "")
            outputs = []
            for out in safe_outputs(cell.get("outputs", [])):
                if _output_chars(out) > text_left:
                    outputs.append(nbformat.v4.new_output("stream", name="stdout", text=(
                        f"[outputs not shown: the grader shows at most {NOTEBOOK_TEXT_CHARS:,} characters of all of a "
                        "notebook's text]")))
                    break
                text_left -= _output_chars(out)
                outputs.append(out)
            cell.outputs = outputs
        else:
            cell.source = text
    return nb


# Markdown and formulas

_MATHML_ELEMENTS = {
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "mfrac", "msqrt", "mroot",
    "mstyle", "mpadded", "mphantom", "menclose", "mover", "munder", "munderover", "mtable", "mtr", "mtd",
    "mlabeledtr", "mmultiscripts", "mprescripts", "none", "merror", "mfenced"}
_MATHML_ATTRIBUTES = {
    "display", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace", "width", "height", "depth",
    "columnalign", "rowalign", "rowspacing", "columnspacing", "columnlines", "rowlines", "frame", "accent",
    "accentunder", "movablelimits", "minsize", "maxsize", "linethickness", "displaystyle", "scriptlevel", "form",
    "symmetric", "largeop", "notation", "open", "close", "separators", "voffset", "align", "columnspan",
    "rowspan"}


def _mathml_element(node: ElementTree.Element) -> str:
    """`node` written out again from the allowlists above, every text and value escaped."""
    tag = node.tag.rpartition("}")[2]
    if tag not in _MATHML_ELEMENTS:
        raise ValueError(f"element {tag} is not allowed")
    attributes = "".join(f' {name}="{html.escape(value)}"' for name, value in node.attrib.items()
                         if name in _MATHML_ATTRIBUTES)
    inner = html.escape(node.text or "") + "".join(_mathml_element(child) + html.escape(child.tail or "")
                                                   for child in node)
    return f"<{tag}{attributes}>{inner}</{tag}>"


def formula_html(tex: str, display: bool) -> str:
    """MathML for a TeX formula, built here so that no script runs in the page; the TeX escaped when it cannot
    be converted, is too long or converts to anything outside MathML's presentation elements."""
    if len(tex) <= FORMULA_CHARS:
        try:
            converted = latex_to_mathml(tex, display="block" if display else "inline")
            if "<!" not in converted:  # no DOCTYPE, entity declaration or comment reaches the parser
                return _mathml_element(ElementTree.fromstring(converted))
        except Exception:  # noqa: BLE001 - any failure of the converter on a student's TeX shows the TeX
            pass
    delimiter = "$$" if display else "$"
    return f"<code class='tex'>{html.escape(delimiter + tex + delimiter)}</code>"


class _StudentMarkdown(mistune.HTMLRenderer):
    """Markdown as the grader shows a student's: raw HTML escaped, links and images as plain text (nothing is
    fetched), formulas as MathML."""

    def __init__(self):
        super().__init__(escape=True)

    def link(self, text: str, url: str, title=None) -> str:
        return f"{text} ({html.escape(url)})" if url and url != text else text

    def image(self, text: str, url: str, title=None) -> str:
        return f"[image not shown: {text or html.escape(url)}]"

    def inline_math(self, text: str) -> str:
        return formula_html(text, display=False)

    def block_math(self, text: str) -> str:
        return formula_html(text, display=True) + "\n"


_markdown = mistune.create_markdown(renderer=_StudentMarkdown(), plugins=["table", "strikethrough", "math"])


def markdown_html(source: str) -> str:
    """A student's markdown as HTML; escaped text instead when the parser fails on it."""
    try:
        return _markdown(source)
    except Exception:  # noqa: BLE001 - RecursionError and the parser's own errors alike
        return f"<pre>{html.escape(source)}</pre>"


# The page


STYLE = """body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.45;padding:0 1rem}
pre{background:#f6f6f6;padding:.5rem;overflow-x:auto;white-space:pre-wrap}pre.stderr{background:#fdecea}
pre.error{background:#fdecea;color:#8a1c1c}
.grader{border:2px solid #1a4d8f;background:#eef4fb;border-radius:.4rem;padding:.3rem 1rem;margin:1rem 0}
.grader>.label{font:bold .8rem sans-serif;color:#fff;background:#1a4d8f;display:inline-block;padding:.1rem .5rem;
margin:0 0 .3rem -.4rem;border-radius:.2rem}
.grader.failed{border-color:#c62828;background:#fdf0f0}.grader.failed>.label{background:#c62828}
.grader.passed{border-color:#2e7d32;background:#f0f8f0}.grader.passed>.label{background:#2e7d32}
.student{border:1px dashed #999;padding:.2rem 1rem;margin:1rem 0}
.student>.label{font:.8rem sans-serif;color:#555}
.cut{color:#8a1c1c;font-style:italic}.comment{white-space:pre-wrap}.late{font-weight:bold}
img{max-width:100%}"""


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    return f"{hours:.1f} hours" if hours >= 1 else f"{max(seconds / 60, 1):.0f} minutes"


def _head(outcome: SubmissionOutcome) -> list[str]:
    title = html.escape(f"{outcome.lab}: feedback for {outcome.student}")
    return ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">",
            f"<title>{title}</title><style>{STYLE}</style></head><body>", f"<h1>{title}</h1>"]


def _failure_page(outcome: SubmissionOutcome) -> str:
    failure = outcome.failure
    if failure.kind.blame is Blame.MACHINE:
        advice = ("This is a problem of the grading machine, not of your notebook: it will be graded again. "
                  "There is nothing you need to do.")
    else:
        advice = (f"It earns no points as it is. {_ADVICE.get(failure.kind, '')} "
                  "Then submit again, or ask your instructor.")
    shown = failure.detail and failure.kind.blame is Blame.SUBMISSION  # the machine's details are the instructor's
    detail = f"<p>{html.escape(_cut(failure.detail, TEXT_CHARS)[0])}</p>" if shown else ""
    return "\n".join(_head(outcome) + [
        "<section class='grader failed'><p class='label'>From the grader</p>",
        f"<p><strong>Your submission could not be graded: {html.escape(failure.kind.value)}.</strong></p>",
        detail, f"<p>{advice}</p></section></body></html>"])


def _summary(outcome: SubmissionOutcome, anchors: dict[str, str], late: Late | None) -> str:
    auto = [t for t in outcome.tests if t.autograded]
    written = [t for t in outcome.tests if not t.autograded]
    graded = [t for t in written if t.score is not None]
    rows = [f"<p><strong>Autograded tests: {outcome.auto_score:g} of {outcome.max_auto_score:g} points</strong> "
            f"({sum(t.passed for t in auto)} of {len(auto)} tests passed).</p>"]
    if written:
        got = sum(t.score for t in graded)
        pending = len(written) - len(graded)
        state = (f"all graded: {got:g} of {sum(t.max_points for t in written):g} points" if not pending else
                 f"{len(graded)} of {len(written)} graded ({got:g} points so far), {pending} not graded yet")
        rows.append(f"<p><strong>Written answers</strong> (graded by hand): {state}.</p>")
        if not pending:
            rows.append(f"<p><strong>Total: {outcome.auto_score + got:g} of "
                        f"{sum(t.max_points for t in outcome.tests):g} points.</strong></p>")
    if late is not None and late.seconds > 0:
        total = sum(t.max_points for t in outcome.tests)
        cost = (f"a late penalty of {late.penalty:g} points applies: your score after the penalty is "
                f"{late.score:g} of {total:g} points" if late.penalty > 0 else
                "under this course's late policy no penalty applies")
        rows.append(f"<p class='late'>Submitted {_duration(late.seconds)} after the due date: {cost}.</p>")
    lost = [t for t in auto if not t.passed]
    if lost:
        rows.append("<p>Tests that did not pass:</p><ul>" + "".join(
            f"<li><a href='#{anchors[t.grade_id]}'>{html.escape(t.grade_id)}</a> ({_points(t.score)} of "
            f"{t.max_points:g}): {html.escape(t.checks or 'no description')}</li>" for t in lost) + "</ul>")
    if written:
        rows.append("<p>Written answers:</p><ul>" + "".join(
            f"<li><a href='#{anchors[t.grade_id]}'>{html.escape(t.grade_id)}</a>: "
            + (f"{t.score:g} of {t.max_points:g}" if t.score is not None else f"not graded yet ({t.max_points:g} points)")
            + "</li>" for t in written) + "</ul>")
    if not outcome.isolated:
        rows.append("<p>This submission was graded without a sandbox (--no-isolation).</p>")
    if outcome.notes:
        rows.append("<p>Notes on the run of your notebook:</p><ul>"
                    + "".join(f"<li>{html.escape(_cut(str(n), TEXT_CHARS)[0])}</li>" for n in outcome.notes) + "</ul>")
    rows.append("<p>This box and the other blue, green or red boxes marked <em>Grader</em> are written by the "
                "grader. Everything in the dashed boxes marked <em>Your notebook</em> is your own notebook, shown as "
                "you submitted it, with each test's verdict in place of the test's code.</p>")
    return "<section class='grader' id='summary'><p class='label'>Grader: summary</p>" + "".join(rows) + "</section>"


def _verdict_html(test: TestOutcome, anchor: str) -> str:
    if test.autograded:
        verdict = "passed" if test.passed else "failed"
        said = "passed" if test.passed else ("not run" if not test.ran else "failed")
        message = (f"<p class='message'>{html.escape(_cut(test.message, TEXT_CHARS)[0])}</p>"
                   if test.message and not test.passed else "")
        return (f"<section class='grader {verdict}' id='{anchor}'><p class='label'>Grader: test</p>"
                f"<p><strong>{html.escape(test.grade_id)}</strong>: {html.escape(test.checks or 'no description')}</p>"
                f"<p>{said}: {_points(test.score)} of {test.max_points:g} points</p>{message}</section>")
    score = (f"{test.score:g} of {test.max_points:g} points" if test.score is not None else
             f"not graded yet ({test.max_points:g} points)")
    comment = (f"<p>Comment from the grader:</p><p class='comment'>{html.escape(_cut(test.comment, TEXT_CHARS)[0])}</p>"
               if test.comment else "")
    return (f"<section class='grader' id='{anchor}'><p class='label'>Grader: written answer</p>"
            f"<p><strong>{html.escape(test.grade_id)}</strong>, graded by hand: {score}</p>{comment}</section>")


def _output_html(out: dict) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        css = "stderr" if out.get("name") == "stderr" else "stdout"
        return f"<pre class='{css}'>{html.escape(_text(out.get('text', '')))}</pre>"
    if kind == "error":
        return f"<pre class='error'>{html.escape(_text(out.get('ename', '')))}: {html.escape(_text(out.get('evalue', '')))}</pre>"
    data = out.get("data", {})
    for mime in ("image/png", "image/jpeg"):
        if mime in data and _valid(mime, data[mime]):
            return f"<img alt='figure' src='data:{mime};base64,{data[mime].replace(chr(10), '')}'>"
    text = _text(data.get("text/plain", ""))
    return f"<pre>{html.escape(text)}</pre>" if text else ""


def _is_test_cell(cell: dict) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _student_cell(cell: dict, markdown_left: int) -> tuple[str, int]:
    """One of the student's cells as HTML, and how many characters of markdown it rendered."""
    source = _text(cell.get("source", ""))
    if cell.get("cell_type") == "markdown":
        text, over = _cut(source, MARKDOWN_CELL_CHARS)
        note = f"<p class='cut'>{_cut_note(over, 'a markdown cell', MARKDOWN_CELL_CHARS)}</p>" if over else ""
        if len(text) <= markdown_left:
            return f"<div class='markdown'>{markdown_html(text)}</div>{note}", len(text)
        return f"<pre class='markdown'>{html.escape(text)}</pre>{note}", 0
    if cell.get("cell_type") == "code":
        text, over = _cut(source, TEXT_CHARS)
        note = f"<p class='cut'>{_cut_note(over, 'a code cell', TEXT_CHARS)}</p>" if over else ""
        outputs = "".join(_output_html(out) for out in safe_outputs(cell.get("outputs", [])))
        return f"<pre class='code'>{html.escape(text)}</pre>{note}{outputs}", 0
    return "", 0


def feedback_page(outcome: SubmissionOutcome, notebook: nbformat.NotebookNode | None, late: Late | None = None) -> str:
    """The student's feedback page: a summary (score, late penalty, failed tests and written answers, linked),
    then their notebook with every test's verdict in place of its code and every written answer's hand grade
    below it; for a submission that could not be graded, what happened and what to do."""
    if outcome.failure is not None:
        return _failure_page(outcome)
    anchors = {t.grade_id: f"grade-{i + 1}" for i, t in enumerate(outcome.tests)}
    tests = {t.grade_id: t for t in outcome.tests}
    body: list[str] = []
    student: list[str] = []
    placed: set[str] = set()
    page_left, markdown_left, cut = PAGE_CHARS, MARKDOWN_CHARS, False

    def close_student() -> None:
        if student:
            body.append("<section class='student'><p class='label'>Your notebook</p>" + "".join(student)
                        + "</section>")
            student.clear()

    for cell in notebook.cells if notebook is not None else []:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        test = tests.get(gid) if gid not in placed else None
        if not _is_test_cell(cell) and not (test is not None and test.autograded) and not cut:
            shown, rendered = _student_cell(cell, markdown_left)
            if len(shown) > page_left:
                cut = True
                student.append(f"<p class='cut'>[the rest of your notebook is not shown: the grader shows at most "
                               f"{PAGE_CHARS:,} characters of it; every verdict follows]</p>")
            else:
                student.append(shown)
                page_left -= len(shown)
                markdown_left -= rendered
        if test is not None:
            close_student()
            body.append(_verdict_html(test, anchors[gid]))
            placed.add(gid)
    close_student()
    rest = [t for t in outcome.tests if t.grade_id not in placed]
    if rest:
        body.append("<h2>Graded cells not found in your notebook</h2>")
        body += [_verdict_html(t, anchors[t.grade_id]) for t in rest]
    return "\n".join(_head(outcome) + [_summary(outcome, anchors, late)] + body + ["</body></html>"])
