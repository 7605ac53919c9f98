"""Kernels forked from the zygote behave like freshly started sandbox kernels, and die with their stand-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

from course_utils import kernel_fork
from course_utils.grading_job import _Zygote
from course_utils.sandbox import POLICY_ENV, SandboxPolicy


@pytest.fixture
def zygote(tmp_path):
    """A zygote listening in tmp_path, started by this test process; yields its socket path."""
    path = tmp_path / "zygote.sock"
    process = subprocess.Popen([sys.executable, "-m", "course_utils.kernel_fork", str(path), str(os.getpid())])
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the zygote did not come up"
        time.sleep(0.1)
    yield path
    process.kill()
    process.wait()


def _start(tmp_path: Path, socket_path: Path | None) -> tuple[KernelManager, Path]:
    home, pid_file = tmp_path / "home", tmp_path / "kernel.pid"
    home.mkdir()
    policy = SandboxPolicy(home=str(home), writable=[str(tmp_path)], pid_file=str(pid_file))
    env = {**os.environ, POLICY_ENV: policy.to_env(), "GRADING_MARK": "seen"}
    env.pop(kernel_fork.SOCKET_ENV, None)
    if socket_path:
        env[kernel_fork.SOCKET_ENV] = str(socket_path)
    spec = tmp_path / "kernels" / "forked"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, kernel_fork.__file__, "-f", "{connection_file}"], "language": "python",
        "display_name": "forked"}))
    km = KernelManager(kernel_name="forked", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
    km.start_kernel(cwd=str(home), env=env)
    return km, pid_file


def _run(km: KernelManager, code: str, timeout: float = 60) -> str:
    client = km.client()
    client.start_channels()
    client.wait_for_ready(timeout=timeout)
    out: list[str] = []
    client.execute_interactive(code, timeout=timeout, output_hook=lambda msg: out.append(
        msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None)
    client.stop_channels()
    return "".join(out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="grading kernels are forked on Linux only")
def test_a_forked_kernel_has_its_stand_ins_folder_and_environment_and_fresh_randomness(tmp_path, zygote):
    km, pid_file = _start(tmp_path, zygote)
    try:
        out = _run(km, "import os, random, sys; print(os.getcwd(), os.environ['GRADING_MARK'], os.getppid(), "
                       "'torch' in sys.modules, random.random())")
        cwd, mark, parent, preloaded, draw = out.split()
        assert cwd == str(tmp_path / "home") and mark == "seen"
        assert preloaded == "True", "the kernel should come with torch already imported"
        assert int(parent) != km.provisioner.process.pid, "the kernel should be the zygote's child, not a new process"
        assert int(pid_file.read_text()) != km.provisioner.process.pid
        (tmp_path / "second").mkdir()
        other, _ = _start(tmp_path / "second", zygote)
        try:
            assert _run(other, "import random; print(random.random())").strip() != draw, "forks share a random stream"
        finally:
            other.shutdown_kernel(now=True)
    finally:
        km.shutdown_kernel(now=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="grading kernels are forked on Linux only")
def test_interrupts_reach_the_forked_kernel_and_it_dies_with_its_stand_in(tmp_path, zygote):
    km, pid_file = _start(tmp_path, zygote)
    try:
        client = km.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        msg_id = client.execute("import time\nwhile True: time.sleep(0.05)")
        time.sleep(1)
        km.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["ename"] == "KeyboardInterrupt"
        client.stop_channels()
        kernel = int(pid_file.read_text())
        assert _alive(kernel)
        km.provisioner.process.send_signal(signal.SIGKILL)  # what jupyter_client does to a kernel that hangs
        deadline = time.monotonic() + 10
        while _alive(kernel):
            assert time.monotonic() < deadline, "the forked kernel outlived its stand-in"
            time.sleep(0.1)
    finally:
        km.cleanup_resources()


def test_without_a_zygote_the_stand_in_becomes_an_ordinary_sandbox_kernel(tmp_path):
    km, pid_file = _start(tmp_path, None)
    try:
        assert _run(km, "import os; print(os.getpid())").strip() == str(km.provisioner.process.pid)
        assert int(pid_file.read_text()) == km.provisioner.process.pid
    finally:
        km.shutdown_kernel(now=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="grading kernels are forked on Linux only")
def test_a_dead_zygote_is_replaced_once_then_kernels_start_the_ordinary_way():
    zygote = _Zygote()
    first = zygote.env()[kernel_fork.SOCKET_ENV]
    zygote.process.kill()
    zygote.process.wait()
    second = zygote.env()[kernel_fork.SOCKET_ENV]
    assert second != first and not Path(first).parent.exists(), "the dead zygote's socket folder should be gone"
    zygote.process.kill()
    zygote.process.wait()
    assert zygote.env() == {}
