"""`course mutants`: mutation testing of the reference solutions, to prove the tests catch plausible wrong answers.

Each answer cell's solution region is parsed, and every small change a student could plausibly make
becomes a *mutant*: a swapped operator or comparison, an off-by-one constant, another axis or dim, a
dropped `keepdim`, a flipped `correction`/`unbiased`/`ddof`, a dropped term, swapped arguments, a list
returned for a tuple, an input changed in place, a removed call (`zero_grad`, `eval`, `train`,
`backward`, a hook's `remove`...) or `torch.no_grad()` block, a removed `detach` or `clone`. Every
mutant is graded like a student's submission (same sandbox, same referee), and it is *killed* when it
loses at least one autograded test. Mutants that cannot be told apart from the solution by any input
are marked equivalent, with a reason, in `source/<lab>/equivalent_mutants.json`.

To keep the cost down, the mutants of one answer cell are tried in one kernel (`run_batch`): the
notebook runs up to that cell, then each mutant replaces the cell and runs the cells up to the next
answer (its tests among them), and the original cell is run again before the next mutant. A mutant
that survives there, or that took its kernel down, is graded alone on the whole notebook, stopping at
its first failed test. Notebooks run only the cells the graded ones need (answers, tests, and the
plain cells that define names they use, found from the syntax tree); the reference solution is graded
that way first, and a lab whose sliced reference does not earn full marks is run in full instead.
"""

from __future__ import annotations

import ast
import copy
import json
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field

import nbformat

from ..testing import parse
from .course import Course
from .jobs import GradeJob, JobKernel, defined_names, nbgrader_id, rebuild, resolve_aliases, run_cells
from .referee import free_names
from .results import NoteKind

EQUIVALENTS_FILE = "equivalent_mutants.json"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
OPERATORS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
             ast.Pow: ast.Mult, ast.MatMult: ast.Mult, ast.Mod: ast.FloorDiv}
COMPARISONS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
               ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
AXES = {"axis", "dim"}
FLAGS = {"keepdims", "keepdim"}
FLIPS = {"correction": {0: 1, 1: 0}, "ddof": {0: 1, 1: 0}, "unbiased": {True: False, False: True}}
UNWRAPPED = {"detach", "clone", "copy", "contiguous"}
GUARDS = {"no_grad", "enable_grad", "inference_mode"}


@dataclass(frozen=True)
class Mutant:
    """One small change to one answer cell."""

    cell: str  # grade_id of the answer cell
    before: str  # the code that changed, as written
    after: str  # what it became
    line: int  # line in the cell (1-based)
    source: str  # the whole mutated cell

    @property
    def key(self) -> str:
        """How an instructor names this mutant in equivalent_mutants.json."""
        return f"{self.before} -> {self.after}"

    def __str__(self) -> str:
        return f"{self.cell}, line {self.line}: {self.key}"


def _region(source: str) -> tuple[int, int] | None:
    """Line indices (start, end) of the solution region's body, or None for a cell without one."""
    lines = source.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if not starts or not ends or ends[0] <= starts[0] + 1:
        return None
    return starts[0] + 1, ends[0]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def cell_mutants(cell_id: str, source: str) -> list[Mutant]:
    """Every mutant of the solution regions of one answer cell (a cell may hold several)."""
    found: list[Mutant] = []
    lines = source.splitlines()
    cursor = 0
    while True:
        span = _region("\n".join(lines[cursor:]))
        if span is None:
            break
        start, end = span[0] + cursor, span[1] + cursor
        found += _region_mutants(cell_id, lines, start, end)
        cursor = end + 1
    unique = {}
    for mutant in found:
        unique.setdefault(mutant.source, mutant)
    return list(unique.values())


def _region_mutants(cell_id: str, lines: list[str], start: int, end: int) -> list[Mutant]:
    body = lines[start:end]
    indent = min((len(l) - len(l.lstrip()) for l in body if l.strip()), default=0)
    text = "\n".join(l[indent:] for l in body)
    try:
        tree = parse(text)
    except SyntaxError:
        return []
    out = []
    for node, replacement in _changes(tree):
        segment = ast.get_source_segment(text, node)
        if segment is None or replacement == segment:
            continue
        mutated = _replace(text, node, replacement)
        try:
            parse(mutated)
        except SyntaxError:
            continue
        new_body = textwrap.indent(mutated, " " * indent).splitlines()
        source = "\n".join(lines[:start] + new_body + lines[end:])
        out.append(Mutant(cell_id, _short(segment), _short(replacement), start + node.lineno, source))
    return out


def _replace(text: str, node: ast.AST, replacement: str) -> str:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    begin = offsets[node.lineno - 1] + len(lines[node.lineno - 1].encode()[:node.col_offset].decode())
    finish = offsets[node.end_lineno - 1] + len(lines[node.end_lineno - 1].encode()[:node.end_col_offset].decode())
    if isinstance(node, ast.stmt) and "\n" in replacement:
        pad = lines[node.lineno - 1][:len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())]
        replacement = replacement.replace("\n", "\n" + pad)
    return text[:begin] + replacement + text[finish:]


def _u(node: ast.AST) -> str:
    return ast.unparse(node)


def _changes(tree: ast.AST):
    """(node, replacement source) for every mutation the operators make in `tree`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp):
            swap = OPERATORS.get(type(node.op))
            if swap:
                yield node, _u(ast.BinOp(node.left, swap(), node.right))
            if isinstance(node.op, (ast.Add, ast.Sub)):  # a dropped term
                yield node, _u(node.left)
                yield node, _u(node.right) if isinstance(node.op, ast.Add) else _u(ast.UnaryOp(ast.USub(), node.right))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARISONS:
            yield node, _u(ast.Compare(node.left, [COMPARISONS[type(node.ops[0])]()], node.comparators))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            yield node, _u(node.operand)
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            for value in (node.value + 1, node.value - 1):
                yield node, repr(value)
        elif isinstance(node, ast.Call):
            yield from _call_changes(node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            yield node, "pass"  # a call made for its effect, left out
        elif isinstance(node, ast.With) and any(_guard(item.context_expr) for item in node.items):
            yield node, "\n".join(_u(stmt) for stmt in node.body)
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
            yield node.value, _u(ast.List(node.value.elts))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.BinOp) and isinstance(node.value.left, ast.Name) \
                and node.value.left.id != node.targets[0].id and type(node.value.op) in OPERATORS:
            # computed in place: the left operand (often an argument) is overwritten
            operand, op = node.value.left.id, _u(ast.BinOp(ast.Name("a"), node.value.op, ast.Name("b")))[2:-2]
            yield node, f"{operand} {op}= {_u(node.value.right)}\n{node.targets[0].id} = {operand}"


def _guard(expr: ast.AST) -> bool:
    func = expr.func if isinstance(expr, ast.Call) else None
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in GUARDS


def _call_changes(node: ast.Call):
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in UNWRAPPED and not node.args and not node.keywords:
        yield node, _u(func.value)
    if len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args[:2]):
        args = [node.args[1], node.args[0], *node.args[2:]]
        yield node, _u(ast.Call(func, args, node.keywords))
    for index, keyword in enumerate(node.keywords):
        rest = node.keywords[:index] + node.keywords[index + 1:]
        value = keyword.value
        constant = value.value if isinstance(value, ast.Constant) else None
        if constant is None and isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub) \
                and isinstance(value.operand, ast.Constant):
            constant = -value.operand.value
        changed = None
        if keyword.arg in AXES and type(constant) is int:
            changed = 1 if constant in (0, -1) else 0
        elif keyword.arg in FLIPS and constant in FLIPS[keyword.arg]:
            changed = FLIPS[keyword.arg][constant]
        if changed is not None:
            yield node, _u(ast.Call(func, node.args, [*rest[:index], ast.keyword(keyword.arg, ast.Constant(changed)),
                                                      *rest[index:]]))
        if keyword.arg in FLAGS or keyword.arg in FLIPS:
            yield node, _u(ast.Call(func, node.args, rest))  # the option left out


def notebook_mutants(nb: nbformat.NotebookNode) -> list[Mutant]:
    """Every mutant of every answer code cell of a source notebook."""
    return [m for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
            for m in cell_mutants(nbgrader_id(c), c.source)]


def with_mutant(nb: nbformat.NotebookNode, mutant: Mutant) -> nbformat.NotebookNode:
    changed = nbformat.reads(nbformat.writes(nb), as_version=4)
    for cell in changed.cells:
        if nbgrader_id(cell) == mutant.cell:
            cell.source = mutant.source
    return changed


def graded_slice(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without the plain code cells no answer or test needs (experiments that only show results).

    A plain cell is kept when it defines a name that a kept cell reads (its imports included), found from
    the syntax trees; markdown and graded cells are always kept.
    """
    cells = list(nb.cells)
    keep = [c.cell_type != "code" or bool(nbgrader_id(c)) for c in cells]
    needed = set()
    changed = True
    while changed:
        changed = False
        for index, cell in enumerate(cells):
            if keep[index] and cell.cell_type == "code":
                needed |= _reads(cell.source)
        for index, cell in enumerate(cells):
            if not keep[index] and cell.cell_type == "code" and (needed & (set(defined_names(cell.source))
                                                                           | _imports(cell.source))):
                keep[index] = changed = True
    sliced = nbformat.reads(nbformat.writes(nb), as_version=4)
    sliced.cells = [c for c, k in zip(sliced.cells, keep) if k]
    return sliced


def _reads(source: str) -> set[str]:
    try:
        return set(free_names(source))
    except SyntaxError:
        return set()


def _imports(source: str) -> set[str]:
    try:
        tree = parse(source)
    except SyntaxError:
        return set()
    return {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in n.names}


@dataclass
class MutationReport:
    """How the tests of one lab fared against its mutants."""

    lab: str
    killed: list[Mutant] = field(default_factory=list)
    survived: list[Mutant] = field(default_factory=list)
    equivalent: dict[str, str] = field(default_factory=dict)  # key "cell: before -> after" -> reason
    sliced: bool = True  # mutants ran on the graded slice of the notebook
    problems: list[str] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return len(self.killed) + len(self.survived)

    @property
    def score(self) -> float:
        return len(self.killed) / self.counted if self.counted else 1.0

    def by_cell(self) -> dict[str, tuple[int, int]]:
        """grade_id -> (killed, counted)."""
        out: dict[str, list[int]] = {}
        for mutant in self.killed + self.survived:
            out.setdefault(mutant.cell, [0, 0])[1] += 1
        for mutant in self.killed:
            out[mutant.cell][0] += 1
        return {k: (v[0], v[1]) for k, v in out.items()}


def equivalents(course: Course, lab: str) -> dict[str, str]:
    """The lab's mutants marked equivalent: "cell: before -> after" -> the instructor's reason."""
    path = course.folder("source", lab) / EQUIVALENTS_FILE
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text())
    return {f"{e['cell']}: {e['mutant']}": e["reason"] for e in entries}


def threshold(course: Course) -> float:
    """The share of non-equivalent mutants each lab must kill (`c.Mutants.threshold`, default 0.9)."""
    return float(course.config.get("Mutants", {}).get("threshold", 0.9))


def unknown_equivalents(report: MutationReport, mutants: list[Mutant]) -> list[str]:
    """Entries of equivalent_mutants.json that name no mutant of the current solution, or several at once (which
    would hide a mutant the tests might kill)."""
    named = Counter(f"{m.cell}: {m.key}" for m in mutants)
    return [f"{EQUIVALENTS_FILE} names a mutant the solution no longer has: {k}" if not named[k] else
            f"{EQUIVALENTS_FILE} names {named[k]} mutants at once: {k} (write the solution so that each change is "
            "told apart, e.g. with a name for one of the values)"
            for k in report.equivalent if named[k] != 1]



@dataclass
class MutantBatch:
    """The mutants of one answer cell, to try in one kernel on the notebook `job` grades."""

    job: GradeJob
    cell: str  # grade_id of the mutated answer cell
    sources: list[str]  # each mutant's version of that cell


def run_batch(batch: MutantBatch) -> list[bool | None]:
    """For each mutant: True if the cells up to the next answer (its tests) fail, False if they pass, None when
    the kernel was lost before it was decided. Always returns."""
    job = batch.job
    decided: list[bool | None] = [None] * len(batch.sources)
    try:
        nb = rebuild(nbformat.reads(job.submission.decode(), as_version=4), nbformat.reads(job.release, as_version=4))
        cells = [c for c in nb.cells if c.cell_type == "code"]
        at = [nbgrader_id(c) for c in cells].index(batch.cell)
        later = [i for i, c in enumerate(cells) if i > at and c.metadata.get("nbgrader", {}).get("solution")]
        segment = cells[at + 1:min(later, default=len(cells))]
        kernel = JobKernel(job)
    except Exception:
        return decided
    try:
        modules = resolve_aliases(job.aliases)
        run = lambda part, stop, whole=cells: run_cells(kernel, job, part, time.monotonic() + job.limits.submission_s,
                                                        stop, modules, whole)
        if run([c for c in cells[:at] if nbgrader_id(c) not in job.tests], False).stopped is not None:
            return decided
        for number, source in enumerate(batch.sources):
            mutant = nbformat.from_dict(copy.deepcopy(dict(cells[at])))
            mutant.source = source
            done = run([mutant, *segment], True, [*cells[:at], mutant, *cells[at + 1:]])
            if done.stopped is not None and done.stopped.kind in (NoteKind.KERNEL_DIED, NoteKind.MEMORY_LIMIT):
                break
            decided[number] = done.failed
            if run([cells[at]], False).stopped is not None:  # the original answer again, for the next mutant
                break
    finally:
        kernel.close()
    return decided
