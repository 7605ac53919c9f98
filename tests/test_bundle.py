"""The student distribution (`bundle.write_bundle`): answer-free, installable with its README's one command, runnable."""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import itertools
import json
import os
import pkgutil
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import bundle
from course_utils.grading.course import Course

REPO = Path(__file__).resolve().parents[1]
COURSE = Course(REPO)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", re.S)
MARK_SCHEME = re.compile(r"### BEGIN MARK SCHEME(.*?)### END MARK SCHEME", re.S)


@pytest.fixture(scope="module")
def student_bundle(tmp_path_factory) -> Path:
    return bundle.write_bundle(COURSE, tmp_path_factory.mktemp("bundle") / "batch-norm-labs")


def _texts(folder: Path) -> dict[Path, str]:
    return {p.relative_to(folder): p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}


def _source_cells() -> list[tuple[str, nbformat.NotebookNode]]:
    return [(lab, c) for lab in COURSE.labs() for c in nbformat.read(COURSE.source_notebook(lab), 4).cells]


def test_bundle_holds_labs_package_readme_and_installer(student_bundle):
    """Does the bundle hold every lab's release notebook, the student package, its README and install script?"""
    files = {str(p) for p in _texts(student_bundle)}
    for lab in COURSE.labs():
        assert f"labs/{lab}/{lab}.ipynb" in files
        released = nbformat.read(COURSE.release_notebook(lab), 4)
        assert nbformat.read(student_bundle / "labs" / lab / f"{lab}.ipynb", 4) == released
    assert {"README.md", "install.sh", "package/pyproject.toml", "package/course_utils/__init__.py"} <= files
    readme = (student_bundle / "README.md").read_text()
    assert "sh install.sh" in readme and "COURSE_QUICK=1" in readme and "Assignments tab" in readme
    pyproject = (student_bundle / "package" / "pyproject.toml").read_text()
    assert "dask" not in pyproject and "psycopg" not in pyproject and "pytest" not in pyproject
    assert '"torch>=' in pyproject and '"nbgrader>=' in pyproject


def test_bundle_holds_nothing_of_the_instructor(student_bundle):
    """Is no source notebook, hidden test, mark scheme, typical mistake, oracle or grading module in the bundle?"""
    texts = _texts(student_bundle)
    names = [str(p) for p in texts]
    forbidden_files = ("mistakes.py", "equivalent_mutants.json", "nbgrader_config.py", "gradebook.db")
    assert not [n for n in names if Path(n).name in forbidden_files], names
    assert not [n for n in names if n.startswith("source/") or "/source/" in n], names
    machinery = ("course_oracles", "course_utils/grading", "course_utils/kernel")
    assert not [n for n in names if any(part in n for part in machinery)], names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")], names
    hidden = [m.strip() for _, c in _source_cells() for m in HIDDEN.findall(c.source)]
    schemes = [m.strip() for _, c in _source_cells() for m in MARK_SCHEME.findall(c.source)]
    assert hidden and schemes, "the labs have hidden tests and mark schemes (otherwise this test checks nothing)"
    for name, text in texts.items():
        assert "BEGIN HIDDEN TESTS" not in text and "BEGIN MARK SCHEME" not in text, name
        assert "BEGIN SOLUTION" not in text, name
        assert not [h for h in hidden if h in text], f"{name} holds a hidden test's text"
        assert not [s for s in schemes if s in text], f"{name} holds a mark scheme's text"
        assert "course_oracles" not in text, f"{name} names the instructor's oracles"


def test_bundle_refuses_an_existing_folder(tmp_path):
    """Does write_bundle refuse to write into a folder that exists, leaving what is there?"""
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        bundle.write_bundle(COURSE, tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def _student_venv(folder: Path) -> Path:
    """A fresh venv that sees this environment's third-party packages (torch, Jupyter) but not the course's.

    Installing torch afresh would take minutes, so the venv reads the instructor environment's site-packages
    through a path file; path files inside that folder (the editable install of course_utils and
    course_oracles) are not run from there, so neither package is importable until the bundle installs one.
    nbgrader's server configuration, which pip would put in the venv, is copied in.
    """
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "instructor_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    server_config = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "nbgrader.json"
    target = folder / "etc" / "jupyter" / "jupyter_server_config.d"
    target.mkdir(parents=True)
    (target / "nbgrader.json").write_text(server_config.read_text())
    return python


def _with_answers(lab: str, release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release notebook with the solution's code typed into each answer cell."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nbformat.read(COURSE.source_notebook(lab), 4).cells
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    for cell in release.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            assert meta["grade_id"] in answers, f"release/{lab} is stale: run `course release {lab}`"
            cell.source = answers[meta["grade_id"]]
    return release


def test_bundle_installs_with_one_command_and_runs_every_lab(student_bundle, tmp_path):
    """Does the README's one command install the bundle into a fresh venv, without the instructor's packages and
    tools, and does every lab run there with the solution's answers typed in (quick mode)?"""
    python = _student_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONDA_PREFIX")}
    env.update(VIRTUAL_ENV=str(tmp_path / "venv"), PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}",
               PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", COURSE_QUICK="1", MPLBACKEND="Agg")
    command = re.search(r"```bash\n(.+?)\n```", (student_bundle / "README.md").read_text()).group(1)
    subprocess.run(command, shell=True, cwd=student_bundle, env=env, check=True, capture_output=True)
    where = subprocess.run([str(python), "-c", "import course_utils; print(course_utils.__file__)"], env=env,
                           cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(tmp_path / "venv")), where
    for module in ("course_oracles", "course_utils.grading"):
        found = subprocess.run([str(python), "-c", f"import {module}"], env=env, cwd=tmp_path, capture_output=True)
        assert found.returncode != 0, f"{module} is importable in the student's environment"
    page = json.loads((tmp_path / "venv/etc/jupyter/labconfig/page_config.json").read_text())
    assert set(page["disabledExtensions"]) == set(bundle.INSTRUCTOR_LAB_EXTENSIONS)
    servers = {}
    for path in sorted((tmp_path / "venv/etc/jupyter/jupyter_server_config.d").glob("*.json")):
        servers.update(json.loads(path.read_text())["ServerApp"]["jpserver_extensions"])
    assert {name for name, on in servers.items() if not on} == set(bundle.INSTRUCTOR_SERVER_EXTENSIONS)
    assert servers["nbgrader.server_extensions.assignment_list"] and servers[
        "nbgrader.server_extensions.validate_assignment"]
    for lab in COURSE.labs():
        path = student_bundle / "labs" / lab / f"{lab}.ipynb"
        answered = tmp_path / f"{lab}.ipynb"
        nbformat.write(_with_answers(lab, nbformat.read(path, 4)), answered)
        run = subprocess.run([str(python), "-m", "nbconvert", "--to", "notebook", "--execute", "--output",
                              str(tmp_path / f"{lab}.run.ipynb"), "--ExecutePreprocessor.timeout=600",
                              "--ExecutePreprocessor.kernel_name=python3", str(answered)],
                             cwd=path.parent, env=env, capture_output=True, text=True)
        assert run.returncode == 0, f"{lab} fails in the student's environment:\n{run.stderr[-3000:]}"


# ---------------------------------------------------------------- (a) no answer can be delegated to the package

def _ours(obj: object) -> bool:
    """Whether `obj` (a function, a partial of one, a class, a callable instance) comes from the student package."""
    target = getattr(obj, "func", obj)  # functools.partial
    module = getattr(target, "__module__", None) or getattr(type(target), "__module__", "")
    return isinstance(module, str) and module.startswith("course_utils")


def _reachable(expression: str, obj: object, depth: int = 0):
    """(expression, callable) for `obj` and every callable a notebook reaches from it: what it wraps
    (`__wrapped__`, a partial's function), the items of dicts, lists and tuples, a class's methods, static and
    class methods (private names included)."""
    if depth > 4:
        return
    if callable(obj) and _ours(obj):
        yield expression, obj
        wrapped = getattr(obj, "__wrapped__", None)
        if wrapped is not None:
            yield from _reachable(f"{expression}.__wrapped__", wrapped, depth + 1)
        if hasattr(obj, "func") and not isinstance(obj, type):
            yield from _reachable(f"{expression}.func", obj.func, depth + 1)
        if isinstance(obj, type):
            for name in vars(obj):
                if not (name.startswith("__") and name.endswith("__")) or name in ("__init__", "__call__"):
                    yield from _reachable(f"{expression}.{name}", getattr(obj, name, None), depth + 1)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _reachable(f"{expression}[{key!r}]", value, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _reachable(f"{expression}[{i}]", value, depth + 1)


def _package_callables() -> dict[str, object]:
    """Every function, class, method and callable object the student package defines, private names included,
    by the expression a notebook would call it with (module attributes, what they wrap or hold, and the methods
    of the package's classes)."""
    import course_utils

    found: dict[int, tuple[str, object]] = {}
    for info in pkgutil.iter_modules(course_utils.__path__):
        if info.name in bundle.GRADING_MACHINERY:
            continue
        module = importlib.import_module(f"course_utils.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, type(module)):
                continue
            for expression, target in _reachable(f"cu.{info.name}.{name}", obj):
                if id(target) not in found or getattr(target, "__module__", None) == module.__name__:
                    found[id(target)] = (expression, target)  # named from the module that defines it, if it does
    return dict(found.values())


def _same_signature(obj: object, required: int, total: int) -> bool:
    """Whether `obj` takes `required` arguments without defaults and accepts `total` positional ones."""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return sum(p.default is p.empty for p in positional) == required and len(positional) >= total


def _fits(function: ast.FunctionDef, candidates: dict[str, object]) -> list[str]:
    """The candidates that take `function`'s arguments (`_same_signature`)."""
    names = [a.arg for a in function.args.args]
    return [dotted for dotted, obj in candidates.items()
            if _same_signature(obj, len(names) - len(function.args.defaults), len(names))]


def _named_like(function: str, dotted: str) -> bool:
    """Whether a candidate carries the exercise's own name (`_bn_forward_test` for `bn_forward_test`)."""
    last = dotted.rsplit(".", 1)[-1].strip("_")
    return last == function or last.startswith(f"{function}_") or last.endswith(f"_{function}")


def _delegations(source: str, candidates: dict[str, object]) -> list[tuple[str, str, str]]:
    """(function, candidate, cell source) for each function of an answer cell and each same-signature candidate:
    the cell with that function forwarding its arguments to the candidate and every other function a stub; and,
    where a cell holds several functions that one test grades together, the cell with every function forwarding
    to a candidate of its own name. A candidate is reached through `eval` of its name, as a student hiding the
    call from the static checks (`cu.testing.check_no_calls` reads the names a cell uses) would reach it."""
    tree = ast.parse(source)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]

    def cell(chosen: dict[str, str]) -> str:
        lines = []
        for i, f in enumerate(functions):
            if f.name in chosen:
                lines.append(f"delegate_{i} = eval({chosen[f.name]!r})\n")
                body = f"return delegate_{i}({', '.join(a.arg for a in f.args.args)})"
            else:
                body = "raise NotImplementedError()"
            lines.append(f"def {f.name}({ast.unparse(f.args)}):\n    {body}\n")
        return "\n".join(lines)

    fits = {f.name: _fits(f, candidates) for f in functions}
    out = [(name, dotted, cell({name: dotted})) for name, found in fits.items() for dotted in found]
    if len(functions) > 1:
        own = [[d for d in fits[f.name] if _named_like(f.name, d)] for f in functions]
        out += [(" + ".join(fits), " + ".join(choice), cell(dict(zip(fits, choice))))
                for choice in itertools.product(*own)]
    return out


def _passed_by_each(lab: str, grade_id: str, variants: list[str]) -> tuple[set[str], list[set[str]]]:
    """The tests after answer cell `grade_id` (up to the next answer) that the solution passes, and that each
    variant of the cell passes, graded as mutation testing grades: in one sandboxed kernel on the notebook's slice."""
    from course_utils.grading.classroom import bundle_from, default_limits, kernel_env
    from course_utils.grading.jobs import GradeJob, JobKernel, nbgrader_id, rebuild, resolve_aliases, run_cells
    from course_utils.grading.mutants import graded_slice

    source = nbformat.read(COURSE.source_notebook(lab), 4)
    release = COURSE.release_notebook(lab).read_text()
    lab_bundle = bundle_from(lab, source, release)
    job = GradeJob(lab=lab, student="delegation", submission=nbformat.writes(graded_slice(source)).encode(),
                   release=release, tests=lab_bundle.tests, aliases=lab_bundle.aliases, limits=default_limits(COURSE),
                   env=kernel_env(), denied=[str(REPO)])
    cells = [c for c in rebuild(nbformat.reads(job.submission.decode(), as_version=4),
                                nbformat.reads(release, as_version=4)).cells if c.cell_type == "code"]
    at = [nbgrader_id(c) for c in cells].index(grade_id)
    later = [i for i, c in enumerate(cells) if i > at and c.metadata.get("nbgrader", {}).get("solution")]
    segment = cells[at + 1:min(later, default=len(cells))]
    modules = resolve_aliases(job.aliases)
    kernel = JobKernel(job)
    try:
        def run(part, whole=cells):
            done = run_cells(kernel, job, part, time.monotonic() + job.limits.submission_s, False, modules, whole)
            return {gid for gid, verdict in done.verdicts.items() if verdict.passed}

        run([c for c in cells[:at] if nbgrader_id(c) not in job.tests])
        solution = run([cells[at], *segment])
        passed = []
        for text in variants:
            variant = nbformat.from_dict(copy.deepcopy(dict(cells[at])))
            variant.source = text
            passed.append(run([variant, *segment], [*cells[:at], variant, *cells[at + 1:]]))
            run([cells[at]])  # the solution's definitions again, for the tests of the next variant
    finally:
        kernel.close()
    return solution, passed


def _answer_cells(lab: str) -> list[tuple[str, str]]:
    return [(c.metadata["nbgrader"]["grade_id"], c.source) for c in nbformat.read(COURSE.source_notebook(lab), 4).cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
            and any(isinstance(n, ast.FunctionDef) for n in ast.parse(c.source).body)]


@pytest.mark.parametrize("lab", COURSE.labs())
def test_no_exercise_earns_a_point_by_forwarding_to_the_student_package(lab, monkeypatch):
    """Does every submission whose answer forwards its arguments to a same-signature callable of the student
    package lose every test of that exercise, graded as `course grade` grades (the solution passing them)?"""
    monkeypatch.setenv("COURSE_QUICK", "1")
    candidates = _package_callables()
    earned = []
    for grade_id, source in _answer_cells(lab):
        delegations = _delegations(source, candidates)
        solution, passed = _passed_by_each(lab, grade_id, [cell for _, _, cell in delegations])
        assert solution, f"{lab}: the solution of {grade_id} passes none of its tests here, so nothing is checked"
        earned += [f"{lab}.{function} -> {dotted}: passes {sorted(tests)}"
                   for (function, dotted, _), tests in zip(delegations, passed) if tests]
    assert not earned, "answers the student package gives away:\n" + "\n".join(earned)
