"""A course directory driven through nbgrader's Python API: its folders (as configured), releases, submissions."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import nbformat
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader

CONFIG_FILE = "nbgrader_config.py"


class CourseError(RuntimeError):
    """A step of the nbgrader pipeline failed; the message carries nbgrader's own explanation."""


@dataclass
class Mistake:
    """A typical wrong answer: text replacements in solution cells, and the tests it should fail."""

    name: str
    explanation: str
    edits: dict[str, list[tuple[str, str]]]  # grade_id of a solution cell -> [(old, new), ...]
    loses: set[str]  # grade_ids of the tests aimed at this mistake


def _find_environment_tools() -> None:
    """nbgrader runs this environment's tools (alembic) by name: find them even where it is not activated."""
    tools = str(Path(sys.executable).parent)
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([tools, os.environ.get("PATH", "")])


def find_course_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) holding nbgrader_config.py."""
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise CourseError(f"No {CONFIG_FILE} found in {here} or above: run `course` inside the course folder.")


class Course:
    """One nbgrader course directory: `source/`, `release/`, `submitted/`, `autograded/`, the gradebook."""

    def __init__(self, root: Path):
        _find_environment_tools()
        self.root = Path(root).resolve()
        self.config = PyFileConfigLoader(CONFIG_FILE, path=str(self.root)).load_config()
        self.coursedir = CourseDirectory(config=self.config, root=str(self.root))
        self.api = NbGraderAPI(coursedir=self.coursedir, config=self.config)

    @classmethod
    def copy_of(cls, repo: Path, dest: Path, labs: Iterable[str]) -> "Course":
        """A fresh course in `dest` holding the configuration and the given labs' source folders.

        The copy always keeps its own SQLite gradebook, even when the course's lives on a database server.
        """
        dest.mkdir(parents=True, exist_ok=True)
        config = (repo / CONFIG_FILE).read_text()
        db = (dest / "gradebook.db").resolve()
        (dest / CONFIG_FILE).write_text(f"{config}\nc.CourseDirectory.db_url = {f'sqlite:///{db}'!r}\n")
        original, fresh = cls(repo), cls(dest)
        for lab in labs:
            shutil.copytree(original.folder("source", lab), fresh.folder("source", lab),
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        return fresh

    def folder(self, step: str, lab: str, student: str = ".") -> Path:
        """`lab`'s folder at one nbgrader step ("source", "release", "submitted", "autograded" or "feedback"), where
        the course's configuration puts it (`c.CourseDirectory.<step>_directory`, `directory_structure`)."""
        return Path(self.coursedir.format_path(getattr(self.coursedir, f"{step}_directory"), student, lab))

    def labs(self) -> list[str]:
        """Every lab in `source/`, i.e. each folder holding a notebook of its own name."""
        src = self.root / self.coursedir.source_directory
        return sorted(p.name for p in src.iterdir() if self.source_notebook(p.name).is_file()) if src.is_dir() else []

    def check_labs(self, labs: Iterable[str]) -> list[str]:
        """Return `labs` (all labs when empty), failing clearly on a name that is not a lab."""
        known = self.labs()
        chosen = list(labs) or known
        unknown = [lab for lab in chosen if lab not in known]
        if unknown:
            raise CourseError(f"Unknown lab(s) {', '.join(unknown)}; the labs are: {', '.join(known)}.")
        return chosen

    def source_notebook(self, lab: str) -> Path:
        return self.folder("source", lab) / f"{lab}.ipynb"

    def release_notebook(self, lab: str) -> Path:
        return self.folder("release", lab) / f"{lab}.ipynb"

    def autograded_notebook(self, lab: str, student: str) -> Path:
        return self.folder("autograded", lab, student) / f"{lab}.ipynb"

    def feedback_page(self, lab: str, student: str) -> Path:
        return self.folder("feedback", lab, student) / f"{lab}.html"

    def release(self, lab: str) -> None:
        """Generate the student version of `lab` in `release/` (and register it in the gradebook)."""
        _check(self.api.generate_assignment(lab, force=True, create=True), f"generating the release of {lab}")

    def submit(self, lab: str, student: str, notebook: nbformat.NotebookNode) -> Path:
        """Place `notebook` where nbgrader looks for `student`'s submission of `lab`."""
        folder = self.folder("submitted", lab, student)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        path = folder / f"{lab}.ipynb"
        nbformat.write(notebook, path)
        return path

    def submitted_students(self, lab: str) -> list[str]:
        """Students with anything at `submitted/<student>/<lab>` (a link or a file there too, without following it:
        reading the submission refuses what is not a plain folder, with the reason)."""
        sub = self.root / self.coursedir.submitted_directory
        return sorted(p.name for p in sub.iterdir() if os.path.lexists(self.folder("submitted", lab, p.name))) \
            if sub.is_dir() else []

    def mistakes(self, lab: str) -> list[Mistake]:
        """The typical mistakes listed in `source/<lab>/mistakes.py` (none when the file is absent)."""
        path = self.folder("source", lab) / "mistakes.py"
        if not path.is_file():
            return []
        entries = runpy.run_path(str(path))["MISTAKES"]
        return [Mistake(m["name"], m["explanation"], m["edits"], set(m["loses"])) for m in entries]

    def notebook_with_mistake(self, lab: str, mistake: Mistake) -> nbformat.NotebookNode:
        """The solution notebook with `mistake`'s edits applied to its solution cells."""
        nb = nbformat.read(self.source_notebook(lab), as_version=4)
        cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
        for grade_id, edits in mistake.edits.items():
            if grade_id not in cells:
                raise CourseError(f"Mistake {mistake.name!r} edits cell {grade_id!r}, which {lab} does not have.")
            for old, new in edits:
                if old not in cells[grade_id].source:
                    raise CourseError(f"Mistake {mistake.name!r}: cell {grade_id!r} does not contain {old!r}.")
                cells[grade_id].source = cells[grade_id].source.replace(old, new)
        return nb


def notebook_errors(nb: nbformat.NotebookNode) -> list[str]:
    """One line per error output in an executed notebook: the cell's grade_id (or index) and the error."""
    found = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                name = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"
                found.append(f"{name}: {out.get('ename')}: {out.get('evalue')}")
    return found


def same_release(expected: Path, actual: Path) -> list[str]:
    """Differences between two release folders (file sets, then notebook content), as readable lines."""
    files = lambda root: {p.relative_to(root) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()
    want, got = files(expected), files(actual)
    problems = [f"missing {p}" for p in sorted(want - got)] + [f"unexpected {p}" for p in sorted(got - want)]
    for rel in sorted(want & got):
        a, b = (expected / rel).read_bytes(), (actual / rel).read_bytes()
        if a == b:
            continue
        if rel.suffix == ".ipynb":
            cells_a, cells_b = json.loads(a)["cells"], json.loads(b)["cells"]
            diff = [i for i, (x, y) in enumerate(zip(cells_a, cells_b)) if x != y]
            where = f"cell {diff[0]}" if diff else f"cell count {len(cells_b)} vs {len(cells_a)}"
            problems.append(f"{rel} differs from a fresh nbgrader release ({where})")
        else:
            problems.append(f"{rel} differs from a fresh nbgrader release")
    return problems


def _check(result: dict, what: str) -> None:
    if not result.get("success"):
        log = (result.get("log") or "").strip().splitlines()[-15:]
        raise CourseError(f"nbgrader failed while {what}:\n" + "\n".join(log + [result.get("error") or ""]).strip())
