"""Grading kernels forked from a warm process that has already imported torch, numpy and ipykernel.

Starting a kernel and importing torch costs more CPU than grading a short lab, so each grading process
keeps one *zygote* (`python -m course_utils.kernel_fork ZYGOTE_SOCKET PARENT_PID`) that imports those
modules once and forks a fresh, sandboxed kernel for each submission. nbgrader launches the kernel
through a small stand-in (`python .../kernel_fork.py -f CONNECTION_FILE`, run as a script so that it
imports nothing heavy): it hands its standard streams, environment and folder to the zygote, forwards
interrupts to the forked kernel and exits with it; if the stand-in is killed, the kernel dies too.
Without a zygote (grading starts one on Linux only) the stand-in becomes an ordinary sandbox kernel.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time

SOCKET_ENV = "COURSE_KERNEL_ZYGOTE"  # where a grading process's zygote listens
PRELOAD = ["numpy", "torch", "torch.nn", "torch.nn.functional", "ipykernel.kernelapp", "ipykernel.ipkernel",
           "course_utils", "course_utils.checks", "course_utils.sandbox"]  # not matplotlib: its backend is per kernel
WAIT_FOR_ZYGOTE_S = 30.0  # a zygote still importing at the first submission is worth waiting for


def _connect() -> socket.socket | None:
    """A connection to this grading process's zygote, or None when there is none."""
    path = os.environ.get(SOCKET_ENV)
    deadline = time.monotonic() + WAIT_FOR_ZYGOTE_S
    while path:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
    return None


def launch(argv: list[str]) -> None:
    """Run the kernel with arguments `argv` as a fork of the zygote, staying alive exactly as long as it does."""
    sock = _connect()
    if sock is None:
        os.execv(sys.executable, [sys.executable, "-m", "course_utils.sandbox", *argv])
    lifeline, keep = os.pipe()  # the kernel dies when `keep` closes, i.e. when this process ends
    request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    socket.send_fds(sock, [len(request).to_bytes(8, "big") + request], [0, 1, 2, lifeline])
    os.close(lifeline)
    reply = sock.makefile("r")
    pid = int(reply.readline() or 0)
    if not pid:
        sys.exit("the kernel zygote did not start a kernel")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: os.kill(pid, number))  # interrupts reach the kernel
    status = reply.readline().strip()
    os._exit(int(status) if status.lstrip("-").isdigit() else 1)


def serve(path: str, parent: int) -> None:
    """Import the kernel's modules, then fork a kernel for each stand-in that connects; exit when `parent` has."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    sys.stdout.flush(), sys.stderr.flush()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    os.rename(path + ".tmp", path)  # stand-ins see the socket only once it accepts
    listener.listen(16)
    kernels: dict[int, socket.socket] = {}  # pid -> the connection of its stand-in
    while os.getppid() == parent:
        if select.select([listener], [], [], 0.1)[0]:
            conn = listener.accept()[0]
            try:
                pid = _fork(conn, listener, kernels)
            except (OSError, ValueError):
                conn.close()
                continue
            conn.sendall(f"{pid}\n".encode())
            kernels[pid] = conn
        for pid, conn in list(kernels.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                try:
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass  # the stand-in is gone already
                conn.close()
                del kernels[pid]
    for pid in kernels:
        _kill_group(pid)
    os.unlink(path)
    os.rmdir(os.path.dirname(path))


def _fork(conn: socket.socket, listener: socket.socket, kernels: dict[int, socket.socket]) -> int:
    """Receive a stand-in's request and fork the kernel for it; returns the kernel's pid."""
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
    try:
        if len(fds) != 4 or len(data) < 8:
            raise ValueError("a malformed request")
        size = int.from_bytes(data[:8], "big")
        data = data[8:]
        while len(data) < size:
            more = conn.recv(size - len(data))
            if not more:
                raise ValueError("a truncated request")
            data += more
        request = json.loads(data)
        pid = os.fork()
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    try:
        listener.close()
        for other in [conn, *kernels.values()]:
            other.close()
        _become_kernel(request, fds)
    finally:
        os._exit(1)


def _become_kernel(request: dict, fds: list[int]) -> None:
    """In the forked child: take on the stand-in's streams, environment and folder, then run the sandbox kernel."""
    import random
    import tempfile
    import threading

    import numpy
    import torch

    from .sandbox import main

    os.setsid()  # its own process group, which the grader kills on a time limit
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [sys.argv[0], *request["argv"]]
    sys.path[0] = request["cwd"]
    tempfile.tempdir = None  # read TMPDIR afresh
    random.seed(), numpy.random.seed(), torch.seed()  # fresh processes do not share random streams
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    threading.Thread(target=_die_with_stand_in, args=(fds[3],), daemon=True).start()
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 0
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(code)


def _die_with_stand_in(lifeline: int) -> None:
    """End the kernel's process group once the stand-in nbgrader started is gone (killed, or exited)."""
    while os.read(lifeline, 1):
        pass
    _kill_group(os.getpid())


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["-f"]:  # run as a script by nbgrader: the stand-in
        sys.path.pop(0)  # this folder holds course modules, not the standard library
        launch(sys.argv[1:])
    else:
        serve(sys.argv[1], int(sys.argv[2]))
