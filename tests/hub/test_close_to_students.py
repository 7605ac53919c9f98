"""What the hub closes to other users when it starts: everything of the course but the way to the shared Python."""

from __future__ import annotations

import stat
from pathlib import Path

from course_utils.grading.hub import close_to_students, reopen


def others(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode) & 0o007


def test_the_course_closes_but_the_way_to_the_environment_stays_and_all_reopens(tmp_path):
    checkout = tmp_path / "checkout"
    for folder in ["source/lab", "course_oracles", ".venv/lib/site-packages", ".venv/bin", "data"]:
        (checkout / folder).mkdir(parents=True)
    for file in ["source/lab/lab.ipynb", "course_oracles/__init__.py", "nbgrader_config.py",
                 ".venv/lib/site-packages/torch.py", "data/x.npy"]:
        (checkout / file).write_text("x")
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    outside.chmod(0o644)
    (checkout / "link").symlink_to(outside)
    everything = [checkout, *checkout.rglob("*")]
    for path in everything:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    before = {path: stat.S_IMODE(path.lstat().st_mode) for path in everything}

    changed = close_to_students([checkout, checkout / "course_oracles"], [checkout / ".venv", checkout / "data"])

    assert others(checkout) == 0o001  # entered on the way to .venv, never listed
    for closed in ["source", "course_oracles", "nbgrader_config.py"]:  # what lies below them needs no change
        assert others(checkout / closed) == 0, closed
    for kept in [".venv", ".venv/lib/site-packages", ".venv/lib/site-packages/torch.py", "data/x.npy"]:
        assert others(checkout / kept) == before[checkout / kept] & 0o007, kept
    assert others(outside) == 0o004  # a link is not followed
    assert set(changed) == {checkout, checkout / "source", checkout / "course_oracles", checkout / "nbgrader_config.py"}

    reopen(changed)
    assert {path: stat.S_IMODE(path.lstat().st_mode) for path in everything} == before
