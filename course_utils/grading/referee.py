"""The referee: runs the lab's test cells in the trusted grading process, against the student's kernel.

A test cell is ordinary Python. The referee executes it here with the lab's imports bound to the real
modules and every other name it reads (the student's functions, classes and values) fetched from the
student's kernel: plain data comes back as values, everything else as a `Remote` handle whose calls,
attributes, length, items and iteration are requests to the kernel. Arguments travel into the kernel
pickled (trusted data going to the untrusted side), so the kernel works on its own copies: nothing the
student's code does to them reaches the test's objects, and a test sees in-place changes only through the
probe `cu.testing.inputs_changed`. The kernel never sees a test's code, its expected values or its
verdict; the verdict is decided here, from plain data.
"""

from __future__ import annotations

import builtins
import io
import pickle
import symtable
import time
from dataclasses import dataclass, field
from typing import Any

import nbformat

from .. import testing
from ..testing import parse
from ..kernel import wire
from .client import CellTimeout, KernelClient, KernelLost, Outputs

TEST_ARGUMENT_BYTES = 256 * 2**20
RELEASE_S = 10.0  # for the kernel to drop a test's handles


class RemoteError(Exception):
    """The student's code raised an exception in the kernel; `mro` names its class and bases."""

    def __init__(self, type_name: str, mro: list[str], message: str):
        super().__init__(message)
        self.type_name, self.mro, self.message = type_name, mro, message

    def __str__(self) -> str:
        short = self.type_name.rsplit('.', 1)[-1]
        return f"{short}: {self.message}" if self.message else short


_ERROR_CLASSES: dict[str, type] = {}


def remote_error(type_name: str, mro: list[str], message: str) -> RemoteError:
    """A RemoteError that is also an instance of the closest built-in exception class in `mro`, so that a test's
    `except ValueError:` catches the student's ValueError as it would in their notebook."""
    base = next((getattr(builtins, m.split(".", 1)[1]) for m in mro if m.startswith("builtins.")
                 and isinstance(getattr(builtins, m.split(".", 1)[1], None), type)
                 and issubclass(getattr(builtins, m.split(".", 1)[1]), Exception)), Exception)
    if base is StopIteration:
        base = Exception  # a StopIteration escaping a generator would turn into a RuntimeError
    if base.__name__ not in _ERROR_CLASSES:
        _ERROR_CLASSES[base.__name__] = RemoteError if base is Exception else type(
            f"Remote{base.__name__}", (RemoteError, base), {})
    return _ERROR_CLASSES[base.__name__](type_name, mro, message)


class TestTimeout(Exception):
    """The code under test ran past the test's time limit."""


class Remote:
    """An object that lives in the student's kernel (a function, class, module, optimizer...), used by name."""

    __slots__ = ("_session", "_id", "_type", "_mro", "_name", "_items")

    def __init__(self, session: "Session", ident: int, type_name: str, mro: list[str], name: str = ""):
        for key, value in (("_session", session), ("_id", ident), ("_type", type_name), ("_mro", mro), ("_name", name),
                           ("_items", None)):
            object.__setattr__(self, key, value)

    def _ask(self, op: str, payload: Any = None, **fields) -> Any:
        return self._session.ask({"op": op, "target": self._id, **fields}, payload)

    def __call__(self, *args, **kwargs):
        return self._session.ask({"op": "call", "target": self._id}, (args, kwargs))

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._ask("getattr", name=name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._ask("setattr", value, name=name)

    def __getitem__(self, key):
        return self._ask("getitem", key)

    def __len__(self) -> int:
        value = self._ask("len")
        if not isinstance(value, int):
            raise TypeError("the student's object reported a length that is not a number")
        return value

    def __iter__(self):
        """The object's items, read from the kernel once (in one request) and the same on every later pass."""
        if self._items is None:
            items = self._ask("items")
            if not isinstance(items, list):
                raise TypeError("the student's object reported its items as something that is not a list")
            object.__setattr__(self, "_items", tuple(items))
        return iter(self._items)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        text = self._ask("repr")
        return text if isinstance(text, str) else f"<{self._type}>"

    @property
    def __class__(self):
        """The closest class of torch, NumPy or the standard library the object derives from (or Remote), so
        that `isinstance(model, nn.Module)` reads as in the student's notebook. Never a class of plain data
        (a number, a string, a list, an array, a tensor...): those cross as data, so a handle that claims one lies."""
        return self._session.trusted_class(self._mro)


@dataclass
class Verdict:
    """One test's outcome: passed or not, the message a student reads, and what the test printed."""

    passed: bool
    message: str = ""
    outputs: list = field(default_factory=list)
    seconds: float = 0.0
    kernel_lost: str = ""  # why the kernel can run nothing more, when this test found it gone


class Session:
    """The referee's side of one test: requests to the kernel and the handles they return."""

    def __init__(self, kernel: KernelClient, deadline: float, sources: dict[str, str], outputs: Outputs):
        self.kernel, self.deadline, self.sources, self.outputs = kernel, deadline, sources, outputs
        self.classes: dict[tuple, type] = {}

    def ask(self, request: dict, payload: Any = None) -> Any:
        buffers = [_pickle(payload)] if payload is not None or request["op"] in ("call", "probe", "setattr") else []
        if time.monotonic() > self.deadline:
            raise TestTimeout()
        try:
            answer, reply_buffers = self.kernel.request(request, buffers, self.deadline, self.outputs)
        except CellTimeout:
            raise TestTimeout() from None
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            raise wire.WireError("a malformed answer from the kernel")
        if not answer["ok"]:
            error = answer.get("error")
            if not isinstance(error, dict):
                raise wire.WireError("a malformed error from the kernel")
            mro = [str(m)[:300] for m in error.get("mro", [])][:64] if isinstance(error.get("mro"), list) else []
            raise remote_error(str(error.get("type", "Exception"))[:300], mro, str(error.get("message", ""))[:4000])
        return wire.decode(answer.get("value"), reply_buffers, self._remote)

    def _remote(self, ident: int, type_name: str, mro: list[str]) -> Remote:
        return Remote(self, ident, type_name, mro)

    def fetch(self, names: list[str]) -> dict[str, Any]:
        found = self.ask({"op": "fetch", "names": names})
        if not isinstance(found, dict):
            raise wire.WireError("a malformed answer from the kernel")
        for name, value in found.items():
            if isinstance(value, Remote):
                object.__setattr__(value, "_name", name)
        return {k: v for k, v in found.items() if k in names}

    def probe(self, module: str, name: str, args: tuple, kwargs: dict) -> Any:
        return self.ask({"op": "probe", "module": module, "name": name}, (args, kwargs))

    def source_of(self, obj: Any) -> str:
        name = obj._name if isinstance(obj, Remote) else getattr(obj, "__name__", "")
        return self.sources.get(name, "")

    def trusted_class(self, mro: list[str]) -> type:
        key = tuple(mro)
        if key not in self.classes:
            self.classes[key] = next((c for c in map(_trusted, mro) if c is not None), Remote)
        return self.classes[key]


def _trusted(qualified: str) -> type | None:
    import sys

    module, _, name = qualified.rpartition(".")
    if module.split(".")[0] not in ("torch", "numpy", "builtins", "collections"):
        return None
    value = sys.modules.get(module)
    for part in name.split("."):
        value = getattr(value, part, None)
    if not isinstance(value, type) or value is object or issubclass(value, _plain_data()):
        return None
    return value


def _plain_data() -> tuple[type, ...]:
    """The classes whose values `wire` carries as data: a handle is never one of them."""
    import numpy as np
    import torch

    return (type(None), bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, np.ndarray, np.generic,
            torch.Tensor, torch.Size, torch.dtype, torch.device)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if type(obj) is Remote or isinstance(obj, Remote):
            return ("handle", object.__getattribute__(obj, "_id"))
        return None


def _pickle(payload: Any) -> bytes:
    out = io.BytesIO()
    try:
        _Pickler(out, protocol=5).dump(payload)
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise TypeError(f"the test passes something to the student's code that cannot be copied into the kernel "
                        f"({err})") from None
    if out.tell() > TEST_ARGUMENT_BYTES:
        raise ValueError("the test passes more data to the student's code than the grader sends at once")
    return out.getvalue()


def free_names(source: str) -> list[str]:
    """Names a test reads that it does not define itself (import aliases, builtins and the student's names)."""
    table = symtable.symtable(source, "<test>", "exec")
    defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    found = {s.get_name() for s in table.get_symbols() if s.is_referenced() and s.get_name() not in defined}
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        stack += child.get_children()
        found |= {s.get_name() for s in child.get_symbols() if s.is_global() and s.get_name() not in defined}
    return sorted(found)


def docstring(source: str) -> str:
    """The first line of a test's docstring: what it checks."""
    import ast

    try:
        text = ast.get_docstring(parse(source)) or ""
    except SyntaxError:
        return ""
    return text.strip().splitlines()[0] if text.strip() else ""


def run_test(kernel: KernelClient, source: str, name: str, modules: dict[str, Any], sources: dict[str, str],
             time_limit_s: float) -> Verdict:
    """Run the test cell `source` (named `name`) against the student's kernel; never raises."""
    start = time.monotonic()
    outputs = Outputs()
    session = Session(kernel, start + time_limit_s, sources, outputs)
    printed = []

    def capture(*args, sep=" ", end="\n", file=None, flush=False):
        text = sep.join(str(a) for a in args) + end
        if file is None:
            printed.append(text)
            outputs.add("stream", {"name": "stdout", "text": text})

    names = {**vars(builtins), "print": capture}
    namespace: dict[str, Any] = {"__builtins__": names, "__name__": f"test_{name}"}
    namespace.update(modules)
    verdict = Verdict(True)
    token = testing.SESSION.set(session)
    try:
        code = compile(source, f"<test {name}>", "exec")
        wanted = [n for n in free_names(source) if n not in namespace and n not in names]
        if wanted:
            namespace.update(session.fetch(wanted))
        exec(code, namespace)
    except RemoteError as err:
        verdict = Verdict(False, f"your code raised {err}")
    except AssertionError as err:
        verdict = Verdict(False, str(err).strip() or "a check of this test failed")
    except TestTimeout:
        verdict = Verdict(False, f"time limit: the code under test ran longer than {time_limit_s:.0f} s and was stopped")
    except KernelLost as err:
        verdict = Verdict(False, f"the notebook's kernel is gone: {err}", kernel_lost=str(err))
    except NameError as err:
        missing = getattr(err, "name", None) or str(err)
        verdict = Verdict(False, f"your notebook does not define {missing!r} (did the cell that defines it raise "
                                 "an error, or was it deleted?)")
    except wire.WireError as err:
        verdict = Verdict(False, f"your code returned something the grader cannot read: {err}")
    except Exception as err:  # the test tripped over what the student's code returned
        verdict = Verdict(False, f"{type(err).__name__}: {err}")
    finally:
        testing.SESSION.reset(token)
    if not verdict.kernel_lost:
        session.deadline = time.monotonic() + RELEASE_S
        try:
            session.ask({"op": "release"})
        except (KernelLost, TestTimeout) as err:
            verdict.kernel_lost = str(err) or "the kernel stopped answering"
        except (RemoteError, wire.WireError):
            pass
    verdict.seconds = time.monotonic() - start
    verdict.outputs = outputs.items
    if not verdict.passed:
        verdict.outputs.append(nbformat.v4.new_output("error", ename="TestFailed", evalue=verdict.message,
                                                      traceback=[f"TestFailed: {verdict.message}"]))
    return verdict
