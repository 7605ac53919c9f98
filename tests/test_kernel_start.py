"""Does a kernel that had trouble starting (no student code has run yet) get another chance?"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import zmq
from jupyter_client.session import Session

from course_utils.grading import jobs
from course_utils.grading.client import CHANNELS, KernelClient

KEY = "k" * 32


def _late_kernel(ip: str, ready: threading.Event, stop: threading.Event) -> None:
    """Sockets' files that refuse connections for a while, then a kernel that answers kernel_info on them."""
    placeholders = []
    for channel in ("shell", "iopub"):
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(f"{ip}-{CHANNELS[channel]}")  # the file exists, nothing listens: a connect is refused
        placeholders.append(sock)
    ready.set()
    time.sleep(0.5)
    for channel, sock in zip(("shell", "iopub"), placeholders):
        sock.close()
        os.unlink(f"{ip}-{CHANNELS[channel]}")
    context = zmq.Context()
    shell, iopub = context.socket(zmq.ROUTER), context.socket(zmq.PUB)
    shell.bind(f"ipc://{ip}-{CHANNELS['shell']}")
    iopub.bind(f"ipc://{ip}-{CHANNELS['iopub']}")
    session = Session(key=KEY.encode(), signature_scheme="hmac-sha256")
    while not stop.is_set():
        if shell.poll(50):
            idents, msg = session.recv(shell, content=True)
            session.send(iopub, "status", {"execution_state": "idle"}, parent=msg)
            session.send(shell, "kernel_info_reply", {"status": "ok"}, parent=msg, ident=idents)
    context.destroy(linger=0)


def test_a_connection_refused_while_the_kernel_starts_is_tried_again(tmp_path):
    ip = str(tmp_path / "kernel")
    ready, stop = threading.Event(), threading.Event()
    kernel = threading.Thread(target=_late_kernel, args=(ip, ready, stop))
    kernel.start()
    try:
        ready.wait(5)
        client = KernelClient(ip, KEY, pid=0, ended=lambda: None, timeout_s=20)
        started = time.monotonic()
        client.wait_ready(timeout_s=20)
        assert time.monotonic() - started < 15
        client.close()
    finally:
        stop.set()
        kernel.join()


def test_a_kernel_that_failed_to_start_is_started_once_more(monkeypatch):
    starts = []

    class Flaky:
        def __init__(self, job):
            starts.append(job)
            if len(starts) == 1:
                raise jobs._KernelStart("the grading kernel did not answer within 120 s of starting")

    monkeypatch.setattr(jobs, "JobKernel", Flaky)
    assert isinstance(jobs.start_kernel("job"), Flaky) and starts == ["job", "job"]
    starts.clear()
    with pytest.raises(jobs._KernelStart):
        jobs.start_kernel("job", attempts=1)
    assert starts == ["job"]
