"""What a graded notebook shows to people: a feedback page for the student, a safe notebook for the formgrader.

Nothing a submission produced reaches a browser as active content. The feedback page is built here from
escaped text, markdown rendered with raw HTML escaped, and PNG or JPEG images; per test it shows what the
test checks (its docstring), whether it passed, its points and its message, never its code. The
autograded notebook keeps the student's cells and outputs minus anything a browser would run (HTML,
JavaScript, SVG, widget views), so that the instructor's formgrader is safe too.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from dataclasses import dataclass

import mistune
import nbformat

SAFE_MIME = ("image/png", "image/jpeg", "text/plain", "text/latex")
RICH_NOTE = "[rich output (HTML, JavaScript, SVG or a widget) removed by the grader]"

_markdown = mistune.create_markdown(escape=True, plugins=["table", "strikethrough"])


@dataclass
class TestReport:
    """One test as the feedback page shows it."""

    grade_id: str
    checks: str  # the test's docstring: what it checks
    points: float
    max_points: float
    passed: bool
    message: str


def safe_outputs(outputs: list) -> list:
    """`outputs` without active content: only text, LaTeX and PNG/JPEG images stay."""
    kept = []
    for out in outputs:
        kind = out.get("output_type")
        if kind in ("display_data", "execute_result"):
            data = {k: v for k, v in out.get("data", {}).items() if k in SAFE_MIME and _valid(k, v)}
            if not data:
                data = {"text/plain": RICH_NOTE}
            out = nbformat.from_dict({**out, "data": data, "metadata": {}})
        kept.append(out)
    return kept


def _valid(mime: str, value) -> bool:
    if not isinstance(value, str):
        return False
    if mime.startswith("image/"):
        try:
            base64.b64decode(value.replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            return False
    return True


def _output_html(out: dict) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        css = "stderr" if out.get("name") == "stderr" else "stdout"
        return f"<pre class='{css}'>{html.escape(str(out.get('text', '')))}</pre>"
    if kind == "error":
        return f"<pre class='error'>{html.escape(str(out.get('ename', '')))}: {html.escape(str(out.get('evalue', '')))}</pre>"
    data = out.get("data", {})
    for mime in ("image/png", "image/jpeg"):
        if mime in data and _valid(mime, data[mime]):
            return f"<img alt='figure' src='data:{mime};base64,{data[mime].replace(chr(10), '')}'>"
    text = data.get("text/plain", "")
    return f"<pre>{html.escape(str(text))}</pre>" if text else ""


def _test_html(report: TestReport) -> str:
    verdict = "passed" if report.passed else "failed"
    message = f"<p class='message'>{html.escape(report.message)}</p>" if report.message and not report.passed else ""
    return (f"<div class='test {verdict}'><p><strong>Test {html.escape(report.grade_id)}</strong>: "
            f"{html.escape(report.checks or 'no description')}</p>"
            f"<p>{verdict}: {report.points:g} of {report.max_points:g} points</p>{message}</div>")


STYLE = """body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.45}
pre{background:#f6f6f6;padding:.5rem;overflow-x:auto;white-space:pre-wrap}pre.stderr{background:#fdecea}
pre.error{background:#fdecea;color:#8a1c1c}.test{border-left:.4rem solid;padding:.2rem .8rem;margin:1rem 0}
.passed{border-color:#2e7d32}.failed{border-color:#c62828}.notes,.late{background:#fff8e1;padding:.5rem 1rem}
img{max-width:100%}"""


def feedback_page(lab: str, student: str, nb: nbformat.NotebookNode, tests: dict[str, TestReport],
                  notes: list[str], isolated: bool) -> str:
    """The student's feedback page: their notebook with every test's verdict in place of the test's code."""
    earned = sum(t.points for t in tests.values())
    possible = sum(t.max_points for t in tests.values())
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
             f"<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
             f"<title>{html.escape(lab)}: feedback</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(lab)}: feedback for {html.escape(student)}</h1>",
             f"<p><strong>Autograded tests: {earned:g} of {possible:g} points.</strong> Written answers are graded "
             "by hand and are not counted here.</p>"]
    if not isolated:
        parts.append("<p class='notes'>This submission was graded without a sandbox (--no-isolation).</p>")
    if notes:
        parts.append("<div class='notes'><p>Notes from the grader:</p><ul>"
                     + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul></div>")
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in tests:
            parts.append(_test_html(tests[gid]))
        elif cell.cell_type == "markdown":
            parts.append(f"<div class='markdown'>{_markdown(str(cell.source))}</div>")
        elif cell.cell_type == "code":
            parts.append(f"<pre class='code'>{html.escape(str(cell.source))}</pre>")
            parts += [_output_html(out) for out in cell.get("outputs", [])]
    parts.append("</body></html>")
    return "\n".join(parts)


MACHINE_FAILURES = ("sandbox failed", "kernel did not start")  # failures no submission can cause
LATE = re.compile(r"<p class='late'>.*?</p>\n?", re.S)  # student text is escaped: it can never match


def with_late_note(page: str, seconds_late: float, penalty: float) -> str:
    """`page` saying how late the submission was and what that cost, or without such a note when it was on time.
    Replaces an earlier note, so a changed due date needs no regrading."""
    page = LATE.sub("", page)
    if seconds_late <= 0:
        return page
    hours = seconds_late / 3600
    when = f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
    note = (f"<p class='late'><strong>Submitted {when} after the due date: a late penalty of {penalty:g} points "
            "applies to the autograded score.</strong></p>\n")
    head, found, rest = page.partition("</h1>")
    return head + found + "\n" + note + rest.lstrip("\n") if found else page


def machine_failure(failure: str | None) -> bool:
    """Whether `failure` is the grading machine's (the sandbox or kernel would not start), not the submission's."""
    return bool(failure) and failure.partition(": ")[0] in MACHINE_FAILURES


def failure_page(student: str, lab: str, failure: str) -> str:
    """A feedback page for a submission that could not be graded, saying why."""
    kind, _, detail = failure.partition(": ")
    advice = ("This is a problem of the grading machine, not of your notebook: your instructor will grade it again."
              if machine_failure(failure) else
              "It earns no autograded points. Fix the problem and submit again, or ask your instructor.")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(lab)} feedback</title></head>"
            f"<body><h1>{html.escape(lab)}: feedback for {html.escape(student)}</h1>"
            f"<p><strong>Your submission could not be graded ({html.escape(kind)}).</strong></p>"
            f"<p>{html.escape(detail)}</p><p>{advice}</p></body></html>")
