"""Grading kernels forked from a warm process that has already imported torch, NumPy, matplotlib and ipykernel.

Importing torch costs more CPU than grading a short lab, so each grading process keeps one *zygote*
(`python -I -m course_utils.kernel.zygote SOCKET`, run from its own folder, so that it imports the installed
`course_utils`, never a copy in the course folder) that imports those modules once, holds nothing else (no
submission, no test, none of the instructor's environment) and forks a kernel for each request:

1. the fork joins the job's cgroups, then the namespaces of the job's bubblewrap sandbox (`setns`, as
   `nsenter` does) and forks again, so that the kernel is a process of the sandbox's pid namespace;
2. the kernel drops to the sandbox's uid, gives up every capability and the right to gain new ones,
   closes every descriptor it inherited, takes the job's environment and home, and starts ipykernel
   with the referee's agent.

The first fork stays outside, reports the kernel's pid and later its exit status on the request's
socket, and exits with it. Without a sandbox (`--no-isolation`) the kernel only gets a folder of its
own. Where no zygote runs, `cold_kernel` does the same from a fresh interpreter.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


# torch._dynamo: the first optimizer a kernel builds imports it, which costs seconds of CPU per kernel.
PRELOAD = ["numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch._dynamo", "torchvision", "matplotlib",
           "matplotlib.font_manager", "tqdm.auto", "ipykernel.kernelapp", "ipykernel.ipkernel", "course_utils",
           "course_utils.checks", "course_utils.testing", "course_utils.kernel"]
SANDBOX_UID = 1000  # the kernel's user inside its sandbox
FOLDER_PREFIX = "course-zygote-"  # then the grading process's pid: a folder whose owner is gone is removed
WAIT_FOR_ZYGOTE_S = 120.0  # a zygote still importing at the first submission is worth waiting for
NAMESPACES = [("pid", 0x20000000), ("net", 0x40000000), ("ipc", 0x08000000), ("uts", 0x04000000),
              ("cgroup", 0x02000000), ("mnt", 0x00020000)]
CLONE_NEWUSER = 0x10000000
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}


# ------------------------------------------------------------ inside the fork: joining and becoming the kernel

def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _join(holder: int) -> None:
    """Enter the namespaces of the sandbox's holder process (this process keeps its pid; its children do not)."""
    libc = _libc()
    fds = [(name, os.open(f"/proc/{holder}/ns/{name}", os.O_RDONLY), flag)
           for name, flag in [*NAMESPACES, ("user", CLONE_NEWUSER)]]
    root = os.geteuid() == 0
    if root:
        os.setgroups([])
    # Root owns the namespaces bwrap made and joins the user namespace last; anyone else must join it first.
    order = fds if root else fds[-1:] + fds[:-1]
    for name, fd, flag in order:
        if libc.setns(fd, flag) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot join the sandbox's {name} namespace: {os.strerror(err)}")
        os.close(fd)


def _drop_privileges() -> None:
    """Become the sandbox's unprivileged user with no capabilities, now or ever (no_new_privs)."""
    libc = _libc()
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    os.setresgid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
    os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    number = SYS_CAPSET.get(os.uname().machine)
    if number is None or libc.syscall(number, ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "cannot drop the kernel's capabilities")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot set no_new_privs")
    status = Path("/proc/self/status").read_text()
    if any(line.split()[1] != "0000000000000000" for line in status.splitlines()
           if line.startswith(("CapEff", "CapPrm", "CapBnd"))):
        raise OSError("the kernel still holds capabilities")


def _become_kernel(request: dict) -> None:
    """In the kernel process: settle in the sandbox (or the folder), then run ipykernel until it is ended."""
    os.setsid()
    if request.get("holder"):
        _drop_privileges()
    null = os.open("/dev/null", os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.closerange(3, 1 << 16)  # nothing of the zygote's or the grader's reaches the kernel
    home = Path(request["home"])
    os.chdir(home)
    folder = home / ".kernel"
    folder.mkdir(mode=0o700, exist_ok=True)
    connection = folder / "connection.json"
    connection.write_text(json.dumps(request["connection"]))
    os.environ.clear()
    os.environ.update(request["env"])
    _limit(request)
    _fresh_state(request)
    from . import start

    start(str(connection))


def _limit(request: dict) -> None:
    import resource

    for limit, value in ((resource.RLIMIT_AS, request.get("address_space", 0)),
                         (resource.RLIMIT_CPU, request.get("cpu_seconds", 0)), (resource.RLIMIT_CORE, 0)):
        if value or limit == resource.RLIMIT_CORE:
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):
                pass


def _fresh_state(request: dict) -> None:
    """What a fresh interpreter would have: new random streams, the thread count, its own temp folder."""
    import random
    import tempfile as tmp

    random.seed()
    tmp.tempdir = None
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.seed()
        torch.set_num_threads(max(1, int(request.get("threads", 1))))
    matplotlib = sys.modules.get("matplotlib")
    if matplotlib is not None:  # imported before ipykernel chose its backend: point it at the inline one
        matplotlib.rcParams["backend"] = "module://matplotlib_inline.backend_inline"


def fork_kernel(request: dict, conn: socket.socket) -> None:
    """In the first fork: join the cgroups and sandbox of `request`, fork the kernel, report on `conn`, exit with it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote's reaper must not take this kernel's status
    try:
        for procs in request.get("cgroups", []):
            Path(procs).write_text(str(os.getpid()))
        if request.get("holder"):
            _join(int(request["holder"]))
        pid = os.fork()
    except BaseException as err:
        _send(conn, f"error could not start a kernel: {err}")
        os._exit(1)
    if pid == 0:
        try:
            conn.close()
            _become_kernel(request)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 0
        except BaseException:
            code = 1
        os._exit(code)
    _send(conn, f"pid {pid}")
    _, status = os.waitpid(pid, 0)
    _send(conn, f"exit {os.waitstatus_to_exitcode(status)}")
    os._exit(0)


def _send(conn: socket.socket, line: str) -> None:
    try:
        conn.sendall((line + "\n").encode())
    except OSError:
        pass


def _read_request(conn: socket.socket, timeout_s: float = 30.0) -> dict:
    conn.settimeout(timeout_s)
    data = b""
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more:
            raise ValueError("a truncated request")
        data += more
        if len(data) > 1 << 22:
            raise ValueError("an oversized request")
    conn.settimeout(None)
    return json.loads(data)


def serve(path: str) -> None:
    """The zygote: import the kernel's modules, then fork a kernel for each request; exit when stdin closes."""
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a module this environment lacks is imported by no kernel either
    sys.stdout.flush(), sys.stderr.flush()
    signal.signal(signal.SIGCHLD, lambda *_: _reap())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    os.rename(path + ".tmp", path)  # clients see the socket only once it accepts
    listener.listen(64)
    while True:
        ready = select.select([listener, sys.stdin], [], [], 1.0)[0]
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
            break  # the grading process is gone or done
        if listener not in ready:
            continue
        conn = listener.accept()[0]
        try:
            request = _read_request(conn)
        except (OSError, ValueError):
            conn.close()
            continue
        if os.fork() == 0:
            listener.close()
            fork_kernel(request, conn)
        conn.close()
    listener.close()
    os.unlink(path)


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


# ------------------------------------------------------------ the grading process's side

class KernelProcess:
    """A kernel started for one job: its host pid, and whether (and how) it has ended."""

    def __init__(self, conn: socket.socket, process: subprocess.Popen | None = None):
        self.conn, self.process, self.exit_code = conn, process, None
        self.buffer, self.eof = b"", False
        line = self._line(timeout_s=WAIT_FOR_ZYGOTE_S)
        if not line or not line.startswith("pid "):
            self.close()
            raise RuntimeError(line.removeprefix("error ") if line else "the kernel's launcher ended without a word")
        self.pid = int(line.split()[1])

    def _line(self, timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buffer:
            if not select.select([self.conn], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return None
            more = self.conn.recv(4096)
            if not more:
                self.eof = True
                return None
            self.buffer += more
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode(errors="replace")

    def ended(self) -> str | None:
        """None while the kernel runs; afterwards, how it ended."""
        if self.exit_code is None:
            line = None if self.eof else self._line(timeout_s=0)
            if line is None and not self.eof:
                return None
            code = line.split()[1] if line and line.startswith("exit ") else "-9"
            self.exit_code = int(code) if code.lstrip("-").isdigit() else -9
        if self.exit_code < 0:
            try:
                name = signal.Signals(-self.exit_code).name
            except ValueError:
                name = "unknown"
            return f"the kernel was killed by signal {-self.exit_code} ({name})"
        return f"the kernel exited with status {self.exit_code} (os._exit, sys.exit or a crash)"

    def close(self) -> None:
        self.conn.close()
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    return {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]), "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", **extra}


def cold_kernel(request: dict) -> KernelProcess:
    """A kernel started from a fresh interpreter (no zygote), by the same steps as a zygote's fork."""
    mine, theirs = socket.socketpair()
    try:
        process = subprocess.Popen([sys.executable, "-I", "-m", "course_utils.kernel.zygote", "--kernel", str(theirs.fileno())],
                                   pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=_clean_env({}), cwd="/")
    finally:
        theirs.close()
    mine.sendall((json.dumps(request) + "\n").encode())
    return KernelProcess(mine, process)


def remove_orphans() -> None:
    """Remove the zygote folders of grading processes that no longer exist (killed before they could clean up)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*-*"):
        owner = folder.name.removeprefix(FOLDER_PREFIX).partition("-")[0]
        if not owner.isdigit():
            continue
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # alive, and someone else's


class Zygote:
    """One warm zygote process for this grading process, restarted once if it dies; `close` ends it."""

    def __init__(self):
        remove_orphans()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
        self.path = str(self.folder / "zygote.sock")
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self._start()

    def _start(self) -> None:
        if not sys.platform.startswith("linux") or self.starts >= 2:
            self.process = None  # forking a process that has loaded torch is not safe on macOS
            return
        self.starts += 1
        if os.path.exists(self.path):
            os.unlink(self.path)
        env = _clean_env({"MPLCONFIGDIR": str(self.folder / "matplotlib"), "OPENBLAS_NUM_THREADS": "1"})
        self.process = subprocess.Popen([sys.executable, "-I", "-m", "course_utils.kernel.zygote", self.path],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env=env, cwd=self.folder)

    def fork(self, request: dict) -> KernelProcess:
        """A kernel for `request`, forked from the zygote (or started cold when there is none)."""
        if self.process is not None and self.process.poll() is not None:
            self._start()
        if self.process is None:
            return cold_kernel(request)
        deadline = time.monotonic() + WAIT_FOR_ZYGOTE_S
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline or self.process.poll() is not None:
                    return cold_kernel(request)
                time.sleep(0.05)
        sock.sendall((json.dumps(request) + "\n").encode())
        return KernelProcess(sock)

    def close(self) -> None:
        if self.process is not None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--kernel"]:
        channel = socket.socket(fileno=int(sys.argv[2]))
        started = _read_request(channel)
        if os.fork() == 0:  # joining namespaces needs a single-threaded process, and torch has started threads
            fork_kernel(started, channel)
        os._exit(os.waitstatus_to_exitcode(os.wait()[1]))
    else:
        serve(sys.argv[1])
