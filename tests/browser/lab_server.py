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
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from course_utils.grading.services import descendants, free_port, log_tail, start_time, stop, wait_until_up  # noqa: F401

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
        return log_tail(self.log, lines)


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
    wait_until_up(process, f"{server.url}/api/status?token={token}", log, "jupyter lab", timeout)
    return server
