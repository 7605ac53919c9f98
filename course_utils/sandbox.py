"""The grading kernel: an IPython kernel that confines a submission to its own folder and guards the tests.

`course grade` starts it as `python -m course_utils.sandbox -f CONNECTION_FILE` with the policy in the
environment variable `COURSE_SANDBOX` (JSON, see `SandboxPolicy`). Before the student's first cell it
sets memory and CPU limits, imports the modules the tests use and remembers them, and installs an
audit hook that refuses files outside the submission's folder, processes, native libraries and
network sockets. Before each test cell it puts back every name the tests rely on (`numpy.allclose`,
`torch.allclose`, `course_utils.checks.*`, the notebook's import aliases, IPython's hooks); a test
during which the code under test replaces one of them fails with `TamperError`.

These are in-process guards: they stop the ordinary ways of cheating and of reading the solutions,
and the audit hook stops the ordinary ways out of the folder, but code that rewrites the kernel's own
machinery could defeat them. Run `course grade` where the grading kernels cannot reach anything more
precious than the course (see the README).
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import json
import os
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

POLICY_ENV = "COURSE_SANDBOX"
OUTPUT_LIMIT_BYTES = 200_000  # text a cell may print before the rest is dropped
# Modules whose functions and classes tests call, protected in every lab (others come from the notebook's imports).
PROTECTED = ["builtins", "math", "numpy", "numpy.testing", "torch", "torch.testing", "torch.nn",
             "torch.nn.functional", "course_utils", "course_utils.checks"]
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
SPAWN_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn",
                "os.startfile", "ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function",
                "socket.connect", "socket.bind", "socket.sendto"}
PATH_EVENTS = {"os.listdir", "os.scandir", "os.chdir", "sqlite3.connect", "shutil.copyfile", "shutil.copytree",
               "glob.glob"}
CHANGE_EVENTS = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
                 "os.symlink", "shutil.rmtree", "shutil.move", "shutil.chown", "os.chflags", "os.setxattr",
                 "os.removexattr", "os.rename", "os.link"}
TWO_PATH_EVENTS = {"os.rename", "os.link", "shutil.move"}
WATCHED = frozenset({"open"} | SPAWN_EVENTS | PATH_EVENTS | CHANGE_EVENTS)


class SandboxError(PermissionError):
    """The submission tried something the grading kernel does not allow (a file outside its folder, a process...)."""


class TamperError(AssertionError):
    """The code under test replaced a name the tests use while a test ran, so the test cannot be trusted."""


@dataclass
class SandboxPolicy:
    """What one grading kernel may touch and how much it may use; travels as JSON in `COURSE_SANDBOX`."""

    home: str  # the submission's own folder, where the kernel runs
    writable: list[str] = field(default_factory=list)  # further folders it may write (its temp and IPython dirs)
    readable: list[str] = field(default_factory=list)  # folders inside a denied one that stay readable
    denied: list[str] = field(default_factory=list)  # folders the kernel may not read (course, other sandboxes)
    memory_bytes: int = 0  # address-space limit (0: none)
    cpu_seconds: int = 0  # CPU-time limit, a backstop behind the grader's wall-clock limit (0: none)
    test_hashes: list[str] = field(default_factory=list)  # sha256 of each test cell's source
    aliases: dict[str, str] = field(default_factory=dict)  # notebook name -> "module" or "module:attribute"
    modules: list[str] = field(default_factory=list)  # further modules the tests use (course_utils.models...)
    pid_file: str = ""  # where the kernel leaves its process id, so the grader can kill it

    def to_env(self) -> str:
        return json.dumps(asdict(self))


def cell_hash(source: str) -> str:
    """The fingerprint by which the kernel recognises a test cell."""
    return hashlib.sha256(source.encode()).hexdigest()


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class FileGuard:
    """An audit hook that keeps the kernel's files, processes and sockets inside the policy."""

    def __init__(self, policy: SandboxPolicy):
        real = lambda p: os.path.realpath(p)
        self.own = [real(p) for p in [policy.home, *policy.writable]]
        self.readable = [real(p) for p in policy.readable]
        self.denied = [real(p) for p in policy.denied]
        self.pid = str(os.getpid())
        # Installed packages load their own native libraries with ctypes (torchvision's operators do).
        self.libraries = sorted({real(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")})

    def allows(self, path: object, write: bool = False) -> bool:
        if isinstance(path, int) or path is None:
            return True  # an already-open descriptor, or no file at all
        try:
            full = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        if any(_under(full, own) for own in self.own):
            return True
        if write:
            return full.startswith("/dev/") or full.startswith("/proc/self/")
        parts = full.split(os.sep)
        if len(parts) > 3 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != self.pid and (
                {"environ", "mem", "task"} & set(parts[3:])):
            return False  # other processes' memory and environment (their files resolve to paths checked here)
        if any(_under(full, r) for r in self.readable):
            return True
        return not any(_under(full, d) for d in self.denied)

    def installed_library(self, name: object) -> bool:
        """True for a library file inside the interpreter's site-packages (not libc, not the student's own)."""
        if not isinstance(name, (str, bytes, os.PathLike)):
            return False
        full = os.path.realpath(os.fsdecode(name))
        return any(_under(full, folder) for folder in self.libraries)

    def __call__(self, event: str, args: tuple) -> None:
        if event not in WATCHED and not event.startswith(("os.exec", "os.spawn")):
            return  # the common case, kept cheap: most audit events are imports, compiles and the like
        if event == "open":
            path, mode, flags = args
            write = (isinstance(flags, int) and flags > 0 and bool(flags & WRITE_FLAGS)) or (
                isinstance(mode, str) and any(c in mode for c in "wax+"))
            if not self.allows(path, write=write):
                raise SandboxError(f"the grader does not let a submission open {os.fsdecode(path)!r} "
                                   "(only files in its own folder)")
        elif event in PATH_EVENTS:
            if args and not self.allows(args[0]) or event == "shutil.copyfile" and not self.allows(args[1], write=True):
                raise SandboxError(f"the grader does not let a submission look at {args[0]!r}")
        elif event in CHANGE_EVENTS:
            # For a symlink only where it is made matters: what it points to is checked when it is opened.
            targets = args[1:2] if event == "os.symlink" else args[:2] if event in TWO_PATH_EVENTS else args[:1]
            if not all(self.allows(t, write=True) for t in targets):
                raise SandboxError(f"the grader does not let a submission change files outside its folder ({event})")
        elif event == "ctypes.dlopen" and self.installed_library(args[0]):
            return  # loading a library shipped inside an installed package; calling through ctypes stays refused
        elif event in SPAWN_EVENTS or event.startswith("os.exec") or event.startswith("os.spawn"):
            raise SandboxError(f"the grader does not let a submission start processes, load native code "
                               f"or open network connections ({event})")


def set_limits(policy: SandboxPolicy) -> None:
    """Cap the kernel's memory and CPU time (POSIX; macOS ignores the memory cap)."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits
        return
    for limit, value in ((getattr(resource, "RLIMIT_AS", None), policy.memory_bytes),
                         (resource.RLIMIT_CPU, policy.cpu_seconds)):
        if limit is not None and value:
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):
                pass  # the platform refuses this limit; the grader's wall-clock limit still holds


def _callable_state(namespace: dict) -> dict:
    """The functions, classes and modules in a namespace: the things a cheat would replace."""
    return {k: v for k, v in namespace.items() if callable(v) or isinstance(v, (ModuleType, staticmethod,
                                                                               classmethod, property))}


def _settle_lazy_patches() -> None:
    """Let torch make the changes it makes to its own classes on first use, so they are not taken for tampering.

    Constructing the first optimizer of a class wraps that class's `step` (for the profiler). The wrapping
    is applied to a bare instance of each class: a real constructor would import torch's compiler, which
    costs every grading kernel more than a second.
    """
    optim = getattr(sys.modules.get("torch"), "optim", None)
    optimizer = getattr(optim, "Optimizer", None)
    if not hasattr(optimizer, "_patch_step_function"):
        return
    for value in list(vars(optim).values()):
        if isinstance(value, type) and issubclass(value, optimizer) and value is not optimizer:
            optimizer._patch_step_function(value.__new__(value))


class NameGuard:
    """Remembers the modules, classes and notebook names the tests use, and puts them back."""

    def __init__(self, aliases: dict[str, str], modules: list[str]):
        names = set(PROTECTED) | set(modules) | {target.split(":")[0] for target in aliases.values()}
        self.modules: dict[str, ModuleType] = {}
        for name in sorted(names):
            try:
                self.modules[name] = importlib.import_module(name)
            except Exception:  # a module this machine lacks cannot be used by the tests either
                continue
        _settle_lazy_patches()
        self.module_state = {name: _callable_state(vars(m)) for name, m in self.modules.items()}
        self.classes = {}
        for module in self.modules.values():
            for value in list(vars(module).values()):
                if isinstance(value, type) and value not in self.classes:
                    self.classes[value] = _callable_state(dict(vars(value)))
        self.aliases = {name: self._resolve(target) for name, target in aliases.items()}
        self.aliases = {k: v for k, v in self.aliases.items() if v is not None}
        self.sys_hooks = (sys.excepthook, sys.displayhook, sys.stdout, sys.stderr)
        torch = self.modules.get("torch")
        self._torch_wrapper = torch._disable_dynamo(len).__code__ if hasattr(torch, "_disable_dynamo") else None

    def _same(self, now: object, then: object) -> bool:
        """`now` is `then`, or torch's own compiler-disabling wrapper around it.

        torch wraps `torch.manual_seed` so when it first imports its compiler (the first optimizer does);
        the wrapper is recognised by its code object and the function it closes over, which cannot be faked.
        """
        if now is then:
            return True
        code = getattr(now, "__code__", None)
        if code is None or code is not self._torch_wrapper:
            return False
        closed = dict(zip(code.co_freevars, (cell.cell_contents for cell in now.__closure__ or ())))
        return closed.get("fn") is then

    def _resolve(self, target: str):
        module_name, _, attribute = target.partition(":")
        module = self.modules.get(module_name)
        if module is None:
            return None
        return self.module_state[module_name].get(attribute, vars(module).get(attribute)) if attribute else module

    def changes(self, user_ns: dict) -> list[str]:
        """Names that differ from the remembered ones: `torch.allclose`, `cu`, `torch.Tensor.__eq__`..."""
        found = [f"sys.modules[{n!r}]" for n, m in self.modules.items() if sys.modules.get(n) is not m]
        for name, module in self.modules.items():
            found += [f"{name}.{k}" for k, v in self.module_state[name].items() if not self._same(vars(module).get(k), v)]
        for cls, state in self.classes.items():
            now = vars(cls)
            found += [f"{cls.__module__}.{cls.__qualname__}.{k}" for k, v in state.items() if now.get(k) is not v]
            found += [f"{cls.__module__}.{cls.__qualname__}.{k}" for k, v in now.items()
                      if k not in state and callable(v) and not k.startswith("_abc")]
        found += [name for name, value in self.aliases.items() if not self._same(user_ns.get(name), value)]
        if user_ns.get("__builtins__") not in (builtins, vars(builtins)):
            found.append("__builtins__")
        return found

    def restore(self, user_ns: dict) -> None:
        """Put back every remembered module, function, class attribute and notebook alias."""
        sys.modules.update(self.modules)
        for name, module in self.modules.items():
            for key, value in self.module_state[name].items():
                if not self._same(vars(module).get(key), value):
                    vars(module)[key] = value
        for cls, state in self.classes.items():
            now = dict(vars(cls))
            for key, value in state.items():
                if now.get(key) is not value:
                    _try_setattr(cls, key, value)
            for key, value in now.items():
                if key not in state and callable(value) and not key.startswith("_abc"):
                    _try_setattr(cls, key, None, delete=True)
        user_ns.update({k: v for k, v in self.aliases.items() if not self._same(user_ns.get(k), v)})
        user_ns["__builtins__"] = builtins
        sys.excepthook, sys.displayhook, sys.stdout, sys.stderr = self.sys_hooks
        sys.settrace(None)
        sys.setprofile(None)


def _try_setattr(cls: type, key: str, value: object, delete: bool = False) -> None:
    try:
        delattr(cls, key) if delete else setattr(cls, key, value)
    except (TypeError, AttributeError):
        pass  # a built-in type: nobody could have changed it either


def _capped(write):
    """Wrap a stream's `write` so that one cell prints at most OUTPUT_LIMIT_BYTES."""
    state = {"used": 0, "warned": False}

    def capped_write(text):
        state["used"] += len(text)
        if state["used"] <= OUTPUT_LIMIT_BYTES:
            return write(text)
        if not state["warned"]:
            state["warned"] = True
            write(f"\n[output truncated: the grader keeps the first {OUTPUT_LIMIT_BYTES:,} characters of a cell]\n")
        return len(text)

    capped_write.reset = lambda: state.update(used=0, warned=False)
    return capped_write


def _make_kernel_class(policy: SandboxPolicy):
    from ipykernel.ipkernel import IPythonKernel

    class GuardedKernel(IPythonKernel):
        """An IPython kernel that restores the tests' names before each test cell and checks them after it."""

        guard: NameGuard | None = None

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            try:
                self._ensure_guard()  # before the kernel answers: the imports do not count against a cell's time
            except Exception:
                type(self).guard = None  # retried, and reported, at the first cell

        def _ensure_guard(self) -> None:
            if self.guard is not None:
                if not self._hooked:
                    sys.addaudithook(FileGuard(policy))
                    self._hooked = True
                return
            shell = self.shell
            for stream in (sys.stdout, sys.stderr):
                stream.write = _capped(stream.write)
            type(self).guard = NameGuard(policy.aliases, policy.modules)
            manager = shell.input_transformer_manager
            self._lists = [(obj, key, list(getattr(obj, key))) for obj, key in (
                (manager, "cleanup_transforms"), (manager, "line_transforms"), (manager, "token_transformers"),
                (shell, "input_transformers_post"), (shell, "ast_transformers"))]
            self._objects = {"input_transformer_manager": manager, "compile": shell.compile,
                             "display_pub": shell.display_pub, "displayhook": shell.displayhook}
            self._events = {k: list(v) for k, v in shell.events.callbacks.items()}
            self._methods = {cls: _callable_state(dict(vars(cls))) for cls in type(shell).__mro__ + type(self).__mro__
                             if cls.__module__.split(".")[0] in {"IPython", "ipykernel", __name__.split(".")[0]}}
            self._hooked = False

        def _restore_shell(self) -> None:
            shell = self.shell
            for key, value in self._objects.items():
                setattr(shell, key, value)
            for obj, key, value in self._lists:
                getattr(obj, key)[:] = value
            for event, callbacks in self._events.items():
                shell.events.callbacks[event] = list(callbacks)
            shell.set_custom_exc((), None)
            for obj in (shell, self):
                for key in [k for k in vars(obj) if callable(getattr(type(obj), k, None))]:
                    delattr(obj, key)  # an instance attribute shadowing one of the kernel's methods
            for cls, state in self._methods.items():
                for key, value in state.items():
                    if vars(cls).get(key) is not value:
                        _try_setattr(cls, key, value)

        async def do_execute(self, code, silent, store_history=True, user_expressions=None,
                             allow_stdin=False, **kwargs):
            try:
                self._ensure_guard()
            except Exception as err:  # the kernel must answer; without its guard it grades nothing
                return self._fail(SandboxError(f"the grading kernel could not start its guards ({err!r})"))
            for stream in (sys.stdout, sys.stderr):
                getattr(stream.write, "reset", lambda: None)()
            if cell_hash(code) not in policy.test_hashes:
                return await super().do_execute(code, silent, store_history, user_expressions, allow_stdin, **kwargs)
            try:
                self._restore_shell()
                self.guard.restore(self.shell.user_ns)
            except Exception as err:  # fail closed: a test the grader cannot protect earns nothing
                return self._fail(TamperError(f"the grader could not restore the names this test uses ({err!r})"))
            reply = await super().do_execute(code, silent, store_history, user_expressions, allow_stdin, **kwargs)
            changed = self.guard.changes(self.shell.user_ns)
            if changed and reply.get("status") == "ok":
                reply = self._fail(TamperError(
                    f"while this test ran, the code under test replaced {', '.join(sorted(changed)[:5])}; "
                    "the test earns no points"), reply.get("execution_count"))
            return reply

        def _fail(self, error: Exception, count: int | None = None) -> dict:
            """Show `error` as this cell's error and answer with an error reply."""
            try:
                raise error
            except type(error):
                self.shell.showtraceback()
            return {"status": "error", "ename": type(error).__name__, "evalue": str(error), "traceback": [],
                    "execution_count": count if count is not None else self.shell.execution_count}

    return GuardedKernel


def main() -> None:
    """Start a grading kernel under the policy in `COURSE_SANDBOX` (arguments as for ipykernel_launcher)."""
    policy = SandboxPolicy(**json.loads(os.environ.pop(POLICY_ENV)))
    set_limits(policy)
    if policy.pid_file:
        Path(policy.pid_file).write_text(str(os.getpid()))
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(kernel_class=_make_kernel_class(policy))


if __name__ == "__main__":
    main()
