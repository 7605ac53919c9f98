"""A JupyterHub for one class on one machine (`start_hub`): accounts, the shared exchange, the released labs.

Run as root: every user's server runs as that user's own system account (JupyterHub's LocalProcessSpawner),
so file permissions keep students apart. Students' servers run the student distribution (`course bundle`) with
nbgrader's Assignments tab and Validate only; the instructor's runs the formgrader and `course` in a copy of the
course in their home, with a copy of the course's packages only they may read. When the hub starts, the course
folder it was made from, the checkout and `course_oracles` are closed to other users, all but the way to the
Python environment the servers share and to `course_utils`, which holds no answer. The hub's own settings are in
hub/jupyterhub_config.py, which reads the JSON written here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .bundle import INSTALL_SCRIPT, INSTRUCTOR_LAB_EXTENSIONS, INSTRUCTOR_SERVER_EXTENSIONS, write_bundle
from .course import Course
from .services import free_port, stop, wait_until_up

PACKAGE = Path(__file__).resolve().parents[1]  # the installed course_utils
HUB_FOLDER = PACKAGE.parent / "hub"
CONFIG_FILE = HUB_FOLDER / "jupyterhub_config.py"
SETTINGS_ENV = "COURSE_HUB_SETTINGS"  # where hub/jupyterhub_config.py finds the settings of this hub
PROXY_ENV = "COURSE_HUB_PROXY"  # a configurable-http-proxy executable other than hub/node_modules' or PATH's
STUDENT_SERVER_EXTENSIONS = ["nbgrader.server_extensions.assignment_list",
                             "nbgrader.server_extensions.validate_assignment"]
# JupyterLab without toasts asking to fetch news (a class's servers reach no internet).
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}


@dataclass
class HubSettings:
    """What hub/jupyterhub_config.py needs to know; written as JSON into the hub's state folder."""

    state: str
    instructor: str
    students: list[str]
    password: str
    course_id: str
    port: int
    hub_port: int
    proxy_api_port: int
    proxy: str
    api_token: str = field(default_factory=lambda: secrets.token_hex(32))  # the launcher's own service token
    ip: str = "127.0.0.1"  # where the hub listens: loopback for a trial, the machine's address for a class
    private: list[str] = field(default_factory=list)  # what students may not read (`private_paths`)

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def path(self, *parts: str) -> Path:
        return Path(self.state, *parts)

    def home(self, user: str) -> Path:
        return Path(pwd.getpwnam(user).pw_dir)

    def course_root(self) -> Path:
        """The instructor's course folder, in their home."""
        return self.home(self.instructor) / "course"

    def exchange(self) -> Path:
        return self.path("exchange")


@dataclass
class Hub:
    """A running hub (with its proxy and users' servers as its children); `stop` ends them all."""

    settings: HubSettings
    process: subprocess.Popen
    log: Path
    closed: dict[Path, int]  # the modes `close_to_students` changed when it started

    def stop(self, grace: float = 30) -> list[int]:
        """Stop the hub, which stops the users' servers and the proxy; return what outlived it (then killed)."""
        return stop(self.process, grace)


def find_proxy() -> str:
    """configurable-http-proxy: $COURSE_HUB_PROXY, hub/node_modules (`npm ci --prefix hub`), or PATH."""
    for candidate in [os.environ.get(PROXY_ENV), HUB_FOLDER / "node_modules" / ".bin" / "configurable-http-proxy",
                      shutil.which("configurable-http-proxy")]:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise RuntimeError("configurable-http-proxy is not installed: run `npm ci --prefix hub` (Node from Debian: "
                       "apt-get install nodejs npm)")


def why_not() -> str | None:
    """Why a hub cannot start on this machine (None when it can)."""
    if os.geteuid() != 0:
        return "the hub must run as root to start each user's server as that user"
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub is not installed (pip install -e '.[hub]')"
    try:
        find_proxy()
    except RuntimeError as err:
        return str(err)
    if shutil.which("useradd") is None:
        return "useradd is missing"
    packages = Path(sysconfig.get_paths()["purelib"])
    if not _everyone_can_reach(packages / "jupyterhub"):
        return f"users cannot reach the installed packages in {packages}: install the course where everyone can read"
    if _shared_python() is None:
        return f"no Python {sys.version_info.major}.{sys.version_info.minor} that every user may run"
    return None


def _shared_python() -> str | None:
    """An interpreter of this Python's version that other users can run (this one may live in root's home)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in [str(Path(sys.base_prefix, "bin", version)), f"/usr/bin/{version}", f"/usr/local/bin/{version}"]:
        if Path(candidate).is_file() and _everyone_can_reach(Path(candidate).resolve()):
            return candidate
    return None


def _everyone_can_reach(path: Path) -> bool:
    """Whether every folder above `path` can be entered and `path` run by any user."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def run(cmd: list[str], user: str | None = None, cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run `cmd` (as `user` if given, with a clean login-free environment) and return its result."""
    if user is not None:
        cmd = ["runuser", "-u", user, "--", "env", "-i", *[f"{k}={v}" for k, v in (env or {}).items()], *cmd]
        env = None
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def user_env(settings: HubSettings, user: str) -> dict[str, str]:
    """The environment of `user`'s server and of the commands run as them: their Python, their Jupyter config."""
    role = "instructor" if user == settings.instructor else "student"
    home = settings.home(user)
    python_env = settings.path(f"{role}-env")
    env = {"HOME": str(home), "USER": user, "LANG": "C.UTF-8", "PATH": f"{python_env / 'bin'}:/usr/bin:/bin",
           "JUPYTER_CONFIG_DIR": str(settings.path("config", role)),
           "JUPYTER_PATH": str(Path(sys.prefix, "share", "jupyter")),  # the installed extensions, configured by
           "JUPYTER_CONFIG_PATH": str(Path(sys.prefix, "etc", "jupyter")),  # their installs and overruled by the role's
           "JUPYTERLAB_SETTINGS_DIR": str(settings.path("config", role, "lab", "user-settings")),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / ".jupyter" / "lab" / "workspaces"),
           "COURSE_QUICK": os.environ.get("COURSE_QUICK", "")}
    if "COURSE_DATA_ROOT" in os.environ:
        env["COURSE_DATA_ROOT"] = os.path.abspath(os.environ["COURSE_DATA_ROOT"])
    return {k: v for k, v in env.items() if v}


def _make_user(name: str, homes: Path) -> None:
    try:
        pwd.getpwnam(name)
        raise RuntimeError(f"a system user {name} exists already: choose other names, or remove it")
    except KeyError:
        pass
    run(["useradd", "--create-home", "--home-dir", str(homes / name), "--shell", "/bin/bash", "--user-group", name])
    (homes / name).chmod(0o700)


def remove_users(settings: HubSettings) -> None:
    """Delete the system users the hub made, with their homes."""
    for user in [settings.instructor, *settings.students]:
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        run(["pkill", "-KILL", "-u", user], check=False)  # nothing of theirs may outlive them
        run(["userdel", "--remove", user], check=False)


def _python_env(settings: HubSettings, name: str, owner: str | None = None,
                left_out: frozenset[str] = frozenset()) -> Path:
    """A venv on the shared Python that sees this course's installed packages (PyTorch, JupyterLab, nbgrader).

    It reads them as a plain path entry, so their .pth files do not run and the course's own editable install (in
    a checkout closed to students) does not come along. With an `owner` (the instructor) it gets a copy of
    `course_utils` and `course_oracles` that only the owner may read; the students' gets the bundle's package.
    """
    env = settings.path(name)
    run([_shared_python(), "-m", "venv", "--without-pip", str(env)])
    site = site_packages(env)
    (site / "course-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    if owner is not None:
        for package in [PACKAGE, _oracles()]:
            shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
            run(["chown", "-R", f"{owner}:{owner}", str(site / package.name)])
            (site / package.name).chmod(0o700)
    ours_bin, python = Path(sys.prefix, "bin"), env / "bin" / "python"
    for script in ours_bin.iterdir():  # the commands (jupyter, nbgrader, alembic, course) on the shared Python
        target = env / "bin" / script.name
        if script.name in left_out or target.exists() or not script.is_file() or script.is_symlink():
            continue
        text = script.read_bytes()
        if text.startswith(f"#!{ours_bin / 'python'}".encode()):
            target.write_bytes(b"#!" + str(python).encode() + text[text.index(b"\n"):])
            target.chmod(0o755)
    return env


def site_packages(env: Path) -> Path:
    """The site-packages folder of the hub's environment `env`."""
    return Path(sysconfig.get_paths(vars={"base": str(env), "platbase": str(env)})["purelib"])


def _oracles() -> Path:
    spec = importlib.util.find_spec("course_oracles")
    if spec is None or not spec.origin:
        raise RuntimeError("course_oracles is not installed: install the course (pip install -e .)")
    return Path(spec.origin).resolve().parent


def private_paths(course: Course) -> list[Path]:
    """What students may not read on the hub's machine: the course folder, the checkout the course is installed
    from (when installed with -e), and the instructor-only `course_oracles` wherever it is installed."""
    found = [course.root.resolve(), _oracles()]
    if (PACKAGE.parent / "pyproject.toml").is_file():
        found.append(PACKAGE.parent)
    return sorted(set(found))


def close_to_students(private: list[Path], keep: list[Path]) -> dict[Path, int]:
    """Take other users' access to every path of `private` away, except the way to each folder of `keep` (the
    Python environment every server runs, the data, the hub's state): a folder above one stays enterable but not
    listable, the rest of it closes. Returns the former mode of each path changed (`reopen` puts them back)."""
    keep = [k.resolve() for k in keep]
    changed: dict[Path, int] = {}

    def take(path: Path, bits: int) -> None:
        mode = path.stat().st_mode & 0o7777
        if mode & bits:
            changed.setdefault(path, mode)
            path.chmod(mode & ~bits)

    def close(path: Path) -> None:
        kept = [k for k in keep if k == path or path in k.parents]
        if path in kept or path.is_symlink():
            return
        if not kept:
            take(path, 0o007)
            return
        take(path, 0o006)
        for entry in path.iterdir():
            close(entry)

    for path in private:
        close(path.resolve())
    return changed


def open_way_to(path: Path) -> dict[Path, int]:
    """Let every user enter each folder above `path` (and `path`) that they cannot, without letting them list it,
    as an install where everyone can read would. Returns the former modes (`reopen` puts them back)."""
    changed = {}
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode & 0o7777
        if not mode & 0o001:
            changed[folder] = mode
            folder.chmod(mode | 0o001)
    return changed


def reopen(changed: dict[Path, int]) -> None:
    """Put back the modes `close_to_students` changed."""
    for path, mode in changed.items():
        path.chmod(mode)


def _write_config(settings: HubSettings, role: str, nbgrader: str, server_extensions: dict[str, bool],
                  disabled_lab: list[str]) -> None:
    folder = settings.path("config", role)
    (folder / "labconfig").mkdir(parents=True)
    (folder / "migrated").touch()  # else Jupyter tries to record a migration of ~/.ipython here, and fails
    (folder / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {
        "jpserver_extensions": server_extensions}}))
    (folder / "labconfig" / "page_config.json").write_text(json.dumps({
        "disabledExtensions": {name: True for name in disabled_lab}}))
    (folder / "nbgrader_config.py").write_text(
        f"c = get_config()  # noqa: F821\nc.Exchange.root = {str(settings.exchange())!r}\n"
        f"c.CourseDirectory.course_id = {settings.course_id!r}\n{nbgrader}")
    for plugin, values in LAB_SETTINGS.items():
        path = folder / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def prepare(course: Course, state: Path, instructor: str, students: list[str], password: str,
            labs: list[str] | None = None, port: int | None = None, ip: str = "127.0.0.1") -> HubSettings:
    """Make the accounts, the two Python environments, the exchange and the instructor's course; release `labs`.

    `state` is a new folder that holds everything of this hub (remove it, and `remove_users`, to undo).
    """
    if why_not() is not None:
        raise RuntimeError(f"the hub cannot start here: {why_not()}")
    if len(password) < 8:
        raise ValueError("the shared trial password must have at least 8 characters")
    labs = course.check_labs(labs or [])
    private = [str(p) for p in private_paths(course)]
    state = Path(state).resolve()
    if not _everyone_can_reach(state.parent):
        raise ValueError(f"users must be able to enter every folder above {state}: choose another place for it")
    state.mkdir()
    state.chmod(0o755)  # users enter it to reach their Python and their configuration, nothing else is theirs
    settings = HubSettings(str(state), instructor, list(students), password, course.coursedir.course_id,
                           port or free_port(), free_port(), free_port(), find_proxy(), ip=ip,
                           private=private)
    try:
        (state / "homes").mkdir()
        (state / "homes").chmod(0o755)
        for user in [instructor, *students]:
            _make_user(user, state / "homes")
        exchange = settings.exchange()
        exchange.mkdir()
        exchange.chmod(0o1777)  # as nbgrader documents: everyone writes, nobody removes another's files
        _write_config(settings, "student", "",
                      {**{e: True for e in STUDENT_SERVER_EXTENSIONS}, **{e: False for e in INSTRUCTOR_SERVER_EXTENSIONS}},
                      INSTRUCTOR_LAB_EXTENSIONS)
        _write_config(settings, "instructor", f"c.CourseDirectory.root = {str(settings.course_root())!r}\n",
                      {**{e: True for e in STUDENT_SERVER_EXTENSIONS}, **{e: True for e in INSTRUCTOR_SERVER_EXTENSIONS}},
                      [])
        _python_env(settings, "instructor-env", owner=instructor)
        student_env = _python_env(settings, "student-env", left_out={"course"})
        bundle = write_bundle(course, state / "bundle")
        run(["sh", str(bundle / INSTALL_SCRIPT)], env={**os.environ, "VIRTUAL_ENV": str(student_env),
                                                       "PATH": f"{student_env / 'bin'}:{os.environ['PATH']}"})
        root = settings.course_root()
        Course.copy_of(course.root, root, labs)
        run(["chown", "-R", f"{instructor}:{instructor}", str(root)])
        env = user_env(settings, instructor)
        run(["course", "release", *labs], user=instructor, cwd=root, env=env)
        for lab in labs:
            run(["python", "-m", "nbgrader", "release_assignment", lab], user=instructor, cwd=root, env=env)
    except BaseException:  # nothing half-made stays: no user, no folder
        remove_users(settings)
        shutil.rmtree(state, ignore_errors=True)
        raise
    settings.path("settings.json").write_text(json.dumps(asdict(settings)))
    settings.path("settings.json").chmod(0o600)
    return settings


def start_hub(settings: HubSettings, log: Path, timeout: float = 120) -> Hub:
    """Close the course to students (`close_to_students`), start JupyterHub (and its proxy) for `settings` and wait
    until it answers."""
    hub_dir = settings.path("hub")
    hub_dir.mkdir(exist_ok=True)
    hub_dir.chmod(0o700)
    data = [Path(os.environ["COURSE_DATA_ROOT"])] if "COURSE_DATA_ROOT" in os.environ else []
    # Grading kernels run as nobody and import course_utils (which holds no answer) from where it is installed.
    keep = [Path(sys.prefix), PACKAGE, settings.path(), *data]
    closed = close_to_students([Path(p) for p in settings.private], keep)
    env = {**os.environ, SETTINGS_ENV: str(settings.path("settings.json"))}
    env.pop("PYTHONPATH", None)
    try:
        with log.open("w") as out:
            process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)], cwd=hub_dir,
                                       env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        wait_until_up(process, f"{settings.url}/hub/api/", log, "jupyterhub", timeout)
    except BaseException:
        reopen(closed)
        raise
    return Hub(settings, process, log, closed)


def load(state: Path) -> HubSettings:
    """The settings of the hub prepared earlier in `state`."""
    return HubSettings(**json.loads((Path(state) / "settings.json").read_text()))


def serve(course: Course, state: Path, instructor: str, students: list[str], password: str,
          labs: list[str] | None = None, port: int | None = None, ip: str = "127.0.0.1") -> None:
    """Prepare the hub in `state` (or reuse the one there), run it until Ctrl-C, then stop it; accounts stay."""
    state = Path(state).resolve()
    settings = load(state) if (state / "settings.json").is_file() else \
        prepare(course, state, instructor, students, password, labs, port, ip)
    hub = start_hub(settings, state / "jupyterhub.log")
    print(f"JupyterHub for {settings.course_id}: {settings.url}/ (log: {hub.log}); Ctrl-C stops it", flush=True)
    print(f"instructor: {settings.instructor}; students: {', '.join(settings.students)}; password: as given")
    print(f"closed to other users (as it stays): {', '.join(settings.private)}")
    try:
        hub.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()


def grade_as_root(settings: HubSettings, args: list[str]) -> subprocess.CompletedProcess:
    """`course ARGS` in the instructor's course, run as root (its sandboxes need root), the files then given back.

    The instructor does the same as root: `cd ~teacher/course && sudo /path/to/.venv/bin/course grade LAB`.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    root = settings.course_root()
    result = run([str(Path(sys.prefix, "bin", "course")), *args], cwd=root, env=env, check=False)
    run(["chown", "-R", f"{settings.instructor}:{settings.instructor}", str(root)])
    return result


def release_feedback(course: Course, lab: str) -> list[Path]:
    """Return `lab`'s feedback through nbgrader's exchange (the instructor, in their course folder on the hub):
    `course feedback`, then `nbgrader release_feedback`. nbgrader releases a page only beside its submission's
    timestamp.txt and submission_secret.txt (which identify the submission in the exchange), copied here."""
    from .handback import return_feedback

    pages = return_feedback(course, lab)
    for student in course.submitted_students(lab):
        if course.feedback_page(lab, student).is_file():
            for name in ["timestamp.txt", "submission_secret.txt"]:
                marker = course.folder("submitted", lab, student) / name
                if marker.is_file():
                    shutil.copy(marker, course.folder("feedback", lab, student))
    subprocess.run([sys.executable, "-m", "nbgrader", "release_feedback", lab], cwd=course.root, check=True)
    return pages


if __name__ == "__main__":
    import argparse

    from .course import find_course_root

    parser = argparse.ArgumentParser(prog="python -m course_utils.grading.hub",
                                     description="On the hub, in the instructor's course folder: return a lab's "
                                                 "feedback into the exchange, where students fetch it.")
    parser.add_argument("command", choices=["feedback"])
    parser.add_argument("lab")
    args = parser.parse_args()
    course = Course(find_course_root(None))
    (lab,) = course.check_labs([args.lab])
    print(f"feedback: {len(release_feedback(course, lab))} page(s) of {lab} written and released")
