"""Local services on loopback (a Jupyter server, JupyterHub): a free port, waiting until one answers, stopping it.

Used by `hub` and by the browser tests, so that every server the project starts is started and stopped one way:
stopping ends the service and every process it started (kernels run in sessions of their own), even when they
outlive its shutdown.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through an HTTP proxy


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_until_up(process: subprocess.Popen, url: str, log: Path, what: str, timeout: float = 120) -> None:
    """Wait until `url` answers 200; stop `process` and raise, with its log's tail, if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}:\n{log_tail(log)}")
        try:
            with DIRECT.open(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    stop(process)
    raise RuntimeError(f"{what} did not answer within {timeout:.0f} s:\n{log_tail(log)}")


def stop(process: subprocess.Popen, grace: float = 15) -> list[int]:
    """Stop `process` with SIGTERM (SIGKILL after `grace` seconds), then kill every process it started.

    Returns the processes that had to be killed because they outlived their parent's shutdown.
    """
    family = descendants(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
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
