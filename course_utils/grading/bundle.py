"""The student distribution (`course bundle DIR`): the release notebooks, the answer-free student package, a README.

Students receive this folder, never the course folder: it holds no source notebook, hidden test, mark scheme,
typical mistake or reference implementation. The student package is `course_utils` without the grading
machinery (`course_utils/grading`, `course_utils/kernel`); the oracles hidden tests use are in `course_oracles`,
which is never copied.
"""

from __future__ import annotations

import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .course import Course

PACKAGE = "package"  # the bundle's folder that holds the student package
INSTALL_SCRIPT = "install.sh"
# What the student package needs, nothing of the instructor's tooling (Dask, PostgreSQL, pytest).
STUDENT_DEPENDENCIES = ["torch>=2.4", "torchvision>=0.19", "numpy>=1.24", "matplotlib>=3.7", "plotly>=5.18",
                        "mnist1d>=0.0.2", "scikit-learn>=1.3", "tqdm>=4.66", "jupyterlab>=4", "nbgrader>=0.9"]
# nbgrader's instructor tools, switched off in a student's JupyterLab; the Assignments tab and Validate stay.
INSTRUCTOR_LAB_EXTENSIONS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                             "@jupyter/nbgrader:course-list"]
INSTRUCTOR_SERVER_EXTENSIONS = ["nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list"]
LEFT_OUT = ["__pycache__", "*.pyc", ".ipynb_checkpoints"]  # never copied, wherever they are
GRADING_MACHINERY = ["grading", "kernel"]  # course_utils' subpackages that grade, not what a lab runs


def _pyproject(version: str) -> str:
    deps = "".join(f'    "{d}",\n' for d in STUDENT_DEPENDENCIES)
    return f"""[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "batch-norm-labs-student"
version = "{version}"
description = "The helpers the Batch Norm Labs notebooks import as `cu`"
requires-python = ">=3.10"
dependencies = [
{deps}]

[tool.setuptools]
packages = ["course_utils"]
"""


def _install_script() -> str:
    labs = " ".join(INSTRUCTOR_LAB_EXTENSIONS)
    servers = " ".join(INSTRUCTOR_SERVER_EXTENSIONS)
    return f"""#!/bin/sh
# Installs the course for a student: the helpers and their dependencies, into the active virtual or conda
# environment, or else into .venv beside this script; then hides nbgrader's instructor tools in JupyterLab.
set -e
cd "$(dirname "$0")"
if [ -n "$VIRTUAL_ENV" ] || [ -n "$CONDA_PREFIX" ]; then
    PYTHON=python
else
    [ -x .venv/bin/python ] || python3 -m venv .venv
    PYTHON=.venv/bin/python
fi
"$PYTHON" -m pip install --disable-pip-version-check ./{PACKAGE}
"$PYTHON" -m jupyterlab.labextensions disable --level=sys_prefix {labs}
"$PYTHON" -m jupyter_server.extension.serverextension disable --sys-prefix {servers}
echo "Installed. Start JupyterLab with: $PYTHON -m jupyter lab labs/"
"""


def _readme(labs: list[str]) -> str:
    listed = "\n".join(f"- `labs/{lab}/{lab}.ipynb`" for lab in labs)
    return f"""# Batch Norm Labs: the student version

Install once (Linux or macOS, Python 3.10 or newer; it downloads PyTorch the first time):

```bash
sh install.sh
```

It installs into the virtual or conda environment you have active, or else into `.venv` in this folder.
Then open JupyterLab (`.venv/bin/jupyter lab labs/` if the script made `.venv`, otherwise `jupyter lab labs/`)
and open a lab:

{listed}

Fill in the cells marked `YOUR CODE HERE` and the written answers marked `YOUR ANSWER HERE`, and run the
visible test cell below each exercise. More tests, hidden from you, run when your notebook is graded, so make
your code right in general, not only for the visible example. A prediction's visible test only checks its
form: the value is recorded and checked when the notebook is graded.

Experiments run at full size by default; start JupyterLab with `COURSE_QUICK=1` (for example
`COURSE_QUICK=1 jupyter lab labs/`) to shrink them to seconds while you debug.

To submit: on the course's JupyterHub, use the Assignments tab (fetch a lab there, Validate, then Submit);
otherwise hand in the lab's `.ipynb` file as your instructor asks. Keep the cells' order and do not delete
test cells; they are put back as released when your notebook is graded.
"""


def _copy_tree(src: Path, dest: Path, also_left_out: list[str]) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*LEFT_OUT, *also_left_out))


def write_bundle(course: Course, dest: Path) -> Path:
    """Write the student distribution of `course` into the new folder `dest` and return it.

    `dest` must not exist yet (nothing of an earlier bundle is mixed in); each lab must have been released.
    """
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists: give a new folder for the bundle")
    labs = course.labs()
    missing = [lab for lab in labs if not course.release_notebook(lab).is_file()]
    if missing:
        raise FileNotFoundError(f"no release of {', '.join(missing)}: run `course release` first")
    ignored = list(course.coursedir.ignore)
    dest.mkdir(parents=True)
    for lab in labs:
        _copy_tree(course.release_notebook(lab).parent, dest / "labs" / lab, ignored)
    package = Path(__file__).resolve().parents[1]
    _copy_tree(package, dest / PACKAGE / "course_utils", GRADING_MACHINERY)
    try:
        course_version = version("batch-norm-labs")
    except PackageNotFoundError:
        course_version = "0.0.0"
    (dest / PACKAGE / "pyproject.toml").write_text(_pyproject(course_version))
    (dest / INSTALL_SCRIPT).write_text(_install_script())
    (dest / INSTALL_SCRIPT).chmod(0o755)
    (dest / "README.md").write_text(_readme(labs))
    return dest

