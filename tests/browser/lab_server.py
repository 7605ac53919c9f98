"""Start JupyterLab and headless Chromium for the browser tests, isolated in temporary folders.

The server listens on 127.0.0.1 only, on a free port, behind a random token; it reads its Jupyter
and JupyterLab configuration from a private folder, so nothing the user or the machine configured
(and nothing the tests configure) leaks in or out. `stop` ends the server and every process it
started, kernels included, even when a test failed half-way.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REQUIRE_ENV = "COURSE_REQUIRE_BROWSER"  # set to 1 (as CI does) to fail instead of skipping without a browser
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server",  # the server is on loopback; an HTTP(S)_PROXY in the environment must not apply
]
# JupyterLab settings for the test profile: every cell stays in the page (no windowing), and no
# toast asks about news or updates (which would also try to reach the internet).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
# The nbgrader parts the tests use, switched on in the private configuration whatever the install did.
SERVER_CONFIG = {"ServerApp": {"jpserver_extensions": {
    "nbgrader.server_extensions.formgrader": True,
    "nbgrader.server_extensions.validate_assignment": True,
}}}


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None when Chromium and Playwright are both installed)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install playwright)"
    if chromium_path() is None:
        return "Chromium is not installed (Debian: apt-get install chromium fonts-dejavu-core)"
    return None


def require_browser() -> None:
    """Skip the calling test module when the browser is missing, or fail when REQUIRE_ENV is set."""
    import pytest

    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(f"browser tests need Chromium and Playwright: {reason}", allow_module_level=True)


def chromium_path() -> str | None:
    """The system Chromium; the tests never download a browser."""
    return shutil.which("chromium")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    """A running `jupyter lab` serving `root`, reachable at `url` with `token`."""

    root: Path
    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def lab_url(self, workspace: str, path: str = "") -> str:
        """JupyterLab in a new, empty workspace, showing the file `path` (relative to `root`) if given.

        A workspace of its own keeps one test's open tabs from reappearing in the next test's page.
        """
        return f"{self.url}/lab/workspaces/{workspace}{f'/tree/{path}' if path else ''}?token={self.token}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def isolated_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment for the server and its kernels: private Jupyter folders, plus `extra`."""
    env = dict(os.environ)
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"), ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
                     ("IPYTHONDIR", "ipython")]:
        env[var] = str(home / sub)
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "config" / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG))
    # The course never uses nbgrader's exchange; a private one spares the formgrader a warning about
    # the machine-wide default folder, which tests must not create.
    (home / "exchange").mkdir(exist_ok=True)
    (home / "config" / "nbgrader_config.py").write_text(f"c.Exchange.root = {str(home / 'exchange')!r}\n")
    for plugin, values in LAB_SETTINGS.items():
        path = home / "lab-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env.update(extra)
    return env


def start_lab(root: Path, home: Path, log: Path, env_extra: dict[str, str], timeout: float = 120) -> LabServer:
    """Start `jupyter lab` in `root` on a free loopback port and wait until it answers."""
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(cmd, cwd=root, env=isolated_env(home, env_extra), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = LabServer(root, f"http://127.0.0.1:{port}", token, process, log)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            with direct.open(f"{server.url}/api/status?token={token}", timeout=5) as reply:
                if reply.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    stop(process)
    raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def stop(process: subprocess.Popen, grace: float = 15) -> list[int]:
    """Stop `process` and every process it started (kernels run in sessions of their own).

    Returns the processes that had to be killed because they outlived their parent's shutdown.
    """
    family = descendants(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    killed = []
    for pid, started in family:
        if start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None once it is gone; guards against PID reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the fields after the command name
    return None if fields[0] == "Z" else int(fields[19])


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every living descendant of `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        started = start_time(child)
        if started is not None:
            found.append((child, started))
        todo += children.get(child, [])
    return found
