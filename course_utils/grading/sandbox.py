"""Each submission's operating-system sandbox, made by bubblewrap (`bwrap`).

For every submission, `Sandbox.start` runs bwrap with new user, pid, network, ipc, uts, mount and cgroup
namespaces and a root file system built from nothing: the system's /usr and libraries, a few files of
/etc, the Python environment (wherever it lives) and the `course_utils` package without its `grading` part
(covered by an empty folder), all read-only at their own paths, the data folder read-only, and three private size-limited tmpfs mounts: the submission's home
(its only writable folder), /tmp and /dev/shm. The course folder, the gradebook, other jobs and the
instructor's home and configuration are simply not there. Inside, the uid is 1000 with no capabilities,
and there is no network but a private loopback. When the grader runs as root, the sandbox's user namespace is
made here, with the sandbox's uid mapped to `HOST_UID` (nobody) outside: a file that only root may read stays
unreadable inside, though bwrap (root outside) can still mount folders that only root may enter.

bwrap keeps the namespaces open with a tiny holder process; the grading kernel then joins them (as
`nsenter` would) from a warm zygote (see `zygote.py`), so it starts with torch already imported. Killing
bwrap ends the sandbox's pid namespace, and with it every process the submission started.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from ..kernel.zygote import SANDBOX_UID

HOST_UID = 65534  # who the sandbox's user is outside it when the grader is root: nobody, who owns nothing
HOME = "/home/student"
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/fonts",
       "/etc/localtime", "/etc/mime.types")
READ_ONLY_SYSTEM = ("/usr", "/sys/devices/system/cpu")
ETC_FILES = {
    "/etc/passwd": f"student:x:{SANDBOX_UID}:{SANDBOX_UID}:student:{HOME}:/bin/sh\n",
    "/etc/group": f"student:x:{SANDBOX_UID}:\n",
    "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    "/etc/hosts": "127.0.0.1 localhost grading\n",
    "/etc/hostname": "grading\n",
}
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`) "
                "on every machine that grades")


class SandboxError(RuntimeError):
    """A sandbox could not be made: the message says what is missing and how to get it."""


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _environment() -> set[str]:
    """The interpreter's own folders: its prefixes and its standard and site-packages folders."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             str(Path(os.path.realpath(sys.executable)).parent.parent)}
    paths |= {p for key in ("stdlib", "platstdlib", "purelib", "platlib") if (p := sysconfig.get_paths().get(key))}
    return {q for p in paths for q in (p, os.path.realpath(p))}


def read_only_paths(extra: list[str]) -> list[str]:
    """What a kernel may read besides the system: this Python environment (wherever it lives, a venv inside the
    course included), the student part of the `course_utils` package and `extra` folders (the data). Nothing else
    of sys.path: a Dask worker's scratch folder or the course folder (with the instructor-only `course_oracles`)
    may be there, and neither is the kernel's business."""
    paths = _environment() | {package_path()} | {os.path.realpath(e) for e in extra}
    return sorted(p for p in paths if os.path.exists(p))


def hidden_paths(read_only: list[str]) -> list[str]:
    """Folders inside the bound ones that the sandbox covers: the grader's own package and the instructor-only
    `course_oracles` (in site-packages when the course is installed without -e). Each is replaced by a folder
    holding only an `__init__.py` that refuses the import (an empty folder would import, as a namespace)."""
    hidden = [str(Path(package_path()) / "grading")]
    oracles = importlib.util.find_spec("course_oracles")
    if oracles is not None and oracles.origin:
        hidden.append(str(Path(oracles.origin).resolve().parent))
    return [h for h in hidden if any(_under(h, os.path.realpath(p)) for p in read_only)]


HIDDEN_INIT = 'raise ModuleNotFoundError("this package is the grader\'s own; grading kernels cannot import it")\n'


def package_path() -> str:
    """The folder of the `course_utils` package the kernels import."""
    return str(Path(__file__).resolve().parents[1])


def bwrap_arguments(read_only: list[str], denied: list[str], tmp_bytes: int, userns: int | None = None) -> list[str]:
    """bwrap's options for one submission: the `read_only` folders, read-only at their own paths, except any
    that is a `denied` folder or holds one; a denied folder inside a bound system folder is covered. `userns`: the
    descriptor of a user namespace made by `user_namespace` (when the grader is root)."""
    args = ["--die-with-parent", "--new-session", "--hostname", "grading", "--cap-drop", "ALL"]
    if userns is None:
        args = ["--unshare-all", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), *args]
    else:  # the namespace exists, with its uid map; the kernel becomes SANDBOX_UID when it joins
        args = ["--userns", str(userns), "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup", *args]
    for path in READ_ONLY_SYSTEM:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    for link in SYSTEM_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    args += [x for path in ETC if os.path.exists(path) for x in ("--ro-bind", path, path)]
    denied = [os.path.realpath(d) for d in denied]
    args += [x for d in denied if any(_under(d, s) for s in READ_ONLY_SYSTEM) for x in ("--tmpfs", d)]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "0755", "--dir", str(Path(HOME).parent)]
    for mount in ("/tmp", "/dev/shm", HOME):
        args += ["--size", str(tmp_bytes), "--perms", "0700" if mount == HOME else "1777", "--tmpfs", mount]
    # After the private /tmp, so that an environment under the temp folder is bound on top of it.
    bound = [p for p in sorted(set(read_only)) if not any(_under(d, p) for d in denied)]
    # The folders above a bound one, made traversable by the sandbox's user (bwrap would make them root's alone).
    above = {str(a) for path in bound for a in Path(path).parents if str(a) not in ("/", "/tmp")
             and not any(_under(str(a), s) for s in (*READ_ONLY_SYSTEM, *bound))}
    args += [x for folder in sorted(above) for x in ("--perms", "0755", "--dir", folder)]
    args += [x for path in bound for x in ("--ro-bind", path, path)]
    args += [x for path in hidden_paths(bound) for x in ("--perms", "0555", "--tmpfs", path)]
    args += ["--chdir", HOME]
    return args


def user_namespace() -> int:
    """A new user namespace, as a descriptor, in which root stays root (for bwrap's mounts) and SANDBOX_UID is
    HOST_UID outside. Only root may write such a map."""
    holder = subprocess.Popen(["unshare", "--user", "/bin/sh", "-c", "read line"], stdin=subprocess.PIPE,
                              env={"PATH": "/usr/bin:/bin"})
    try:
        mine = os.readlink("/proc/self/ns/user")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{holder.pid}/ns/user") == mine:
            if holder.poll() is not None or time.monotonic() > deadline:
                raise SandboxError("could not make the sandbox's user namespace (`unshare --user` failed)")
            time.sleep(0.005)
        for name in ("uid_map", "gid_map"):
            Path(f"/proc/{holder.pid}/{name}").write_text(f"0 0 1\n{SANDBOX_UID} {HOST_UID} 1\n")
        return os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY)
    finally:
        holder.kill()
        holder.wait()


def _bwrap() -> str | None:
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/usr/local/bin/bwrap") if os.path.exists(p)),
                                         None)


def check_isolation() -> str | None:
    """None when this machine can make grading sandboxes; otherwise what is missing and how to get it."""
    if not sys.platform.startswith("linux"):
        return (f"grading sandboxes need Linux namespaces, and this is {sys.platform}: grade on a Linux machine "
                "(or a Linux Dask cluster), or pass --no-isolation to grade without a sandbox")
    bwrap = _bwrap()
    if bwrap is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}, or pass --no-isolation"
    try:
        userns = user_namespace() if os.geteuid() == 0 else None
        try:
            done = subprocess.run([bwrap, *bwrap_arguments([], [], 2**20, userns), "--", "/bin/true"],
                                  capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
                                  pass_fds=() if userns is None else (userns,))
        finally:
            if userns is not None:
                os.close(userns)
    except (OSError, subprocess.TimeoutExpired, SandboxError) as err:
        return f"bubblewrap could not run ({err})"
    if done.returncode:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        return (f"bubblewrap cannot create namespaces here ({why}): allow unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)"
                ", run the grader as root, or pass --no-isolation")
    why = _join_problem() if os.geteuid() != 0 else None
    if why is not None:
        return (f"grading kernels cannot enter their sandboxes when the grader is not root ({why}): run it as root "
                "(e.g. `sudo course grade LAB`), or pass --no-isolation")
    return None


# Enters a sandbox exactly as a grading kernel does, with the zygote's own code, loaded from its file so that the
# check imports nothing else (no torch).
JOIN_CHECK = ("import importlib.util, sys\n"
              "spec = importlib.util.spec_from_file_location('zygote', sys.argv[1])\n"
              "zygote = importlib.util.module_from_spec(spec)\n"
              "spec.loader.exec_module(zygote)\n"
              "zygote._join(int(sys.argv[2]))\n")


def _join_problem() -> str | None:
    """None when a process of this grader can enter a sandbox as each grading kernel does; otherwise why not.
    Root always can; whether an unprivileged grader can depends on how bubblewrap nests the namespaces it makes."""
    try:
        box = Sandbox([], [], 2**20)
    except SandboxError as err:
        return str(err)
    try:
        done = subprocess.run([sys.executable, "-I", "-c", JOIN_CHECK, str(Path(package_path(), "kernel", "zygote.py")),
                               str(box.holder)], capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    finally:
        box.close()
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]


class Sandbox:
    """One submission's namespaces and file system, held open by bwrap until `close`."""

    def __init__(self, read_only: list[str], denied: list[str], tmp_bytes: int):
        bwrap = _bwrap()
        if bwrap is None:
            raise SandboxError(f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}")
        data = [user_namespace()] if os.geteuid() == 0 else []  # descriptors handed to bwrap by number
        ready_r, ready_w = os.pipe()
        args = [bwrap, *bwrap_arguments(read_only, denied, tmp_bytes, data[0] if data else None)]
        hidden = {f"{path}/__init__.py": HIDDEN_INIT for path in hidden_paths(read_only)}
        for path, text in {**ETC_FILES, **hidden}.items():  # memfds holding the synthetic files
            fd = os.memfd_create("etc")
            os.write(fd, text.encode())
            os.lseek(fd, 0, os.SEEK_SET)
            data.append(fd)
            args += ["--perms", "0444", "--ro-bind-data", str(fd), path]
        holder = f"printf ready >/proc/self/fd/{ready_w} && exec sleep infinity"
        try:
            self.process = subprocess.Popen([*args, "--", "/bin/sh", "-c", holder], pass_fds=(ready_w, *data),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"})
            self.error = self.process.stderr
        finally:
            for fd in (ready_w, *data):
                os.close(fd)
        try:
            ready = os.read(ready_r, 5)
        finally:
            os.close(ready_r)
        if ready != b"ready":
            self.close()
            error = self.error.read().decode(errors="replace").strip()[-500:]
            raise SandboxError(f"bubblewrap could not make the sandbox: {error or 'no message'}")
        self.error.close()  # bwrap has nothing more to say; a full pipe must never block it
        self.holder = self._holder_pid()
        if os.geteuid() == 0:  # the home bwrap made belongs to root; it is the sandbox user's
            os.chown(f"/proc/{self.holder}/root{HOME}", HOST_UID, HOST_UID, follow_symlinks=False)

    def _holder_pid(self) -> int:
        """The host pid of the holder process: the one whose namespaces a kernel joins."""
        pid = self.process.pid
        for _ in range(2):  # bwrap -> its init in the new pid namespace -> the holder
            deadline = time.monotonic() + 5
            children: list[int] = []
            while not children and time.monotonic() < deadline:
                children = [int(c) for task in os.listdir(f"/proc/{pid}/task")
                            for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
                if not children:
                    time.sleep(0.01)
            if not children:
                raise SandboxError("bubblewrap started but its sandbox process could not be found")
            pid = children[0]
        return pid

    def close(self) -> None:
        """End the sandbox: bwrap's death takes its pid namespace, and every process in it, along."""
        try:
            self.process.kill()
        except ProcessLookupError:
            pass
        self.process.wait()
