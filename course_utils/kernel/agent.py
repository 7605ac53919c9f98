"""The referee's hands inside the student's kernel: calls the student's code on inputs the referee sends.

The grading kernel registers `register(kernel)` as the comm target `course.referee` before the first cell
runs. Each request names an operation on the student's namespace or on a handle (an object that stays in
the kernel): fetch a name, call, get or set an attribute, take the length, iterate, index, run a probe
from `course_utils.testing`. Arguments arrive pickled from the referee (trusted data); answers leave as
plain data (`wire.encode`). This module runs where the student's code runs and holds nothing secret: it
sees the inputs of a test, never its code, its expected values or its verdict.
"""

from __future__ import annotations

import importlib
import io
import itertools
import pickle
from typing import Any

from . import wire

TARGET = "course.referee"
MAX_ITEMS = 100_000  # items of one iteration the referee reads


class Agent:
    """Answers the referee's requests on one comm; objects it hands out stay here under a number."""

    def __init__(self, namespace: dict):
        self.namespace = namespace
        self.handles: dict[int, Any] = {}

    def handle(self, obj: Any) -> dict:
        ident = len(self.handles) + 1
        self.handles[ident] = obj
        mro = [f"{c.__module__}.{c.__qualname__}" for c in type(obj).__mro__]
        return {"t": "handle", "id": ident, "type": mro[0], "mro": mro}

    def answer(self, request: dict, buffers: list) -> tuple[dict, list[bytes]]:
        """Carry out one request; any exception the student's code raises becomes an error answer."""
        ident = request.get("id")
        try:
            tree, out = wire.encode(self._run(request, buffers), self.handle)
            return {"id": ident, "ok": True, "value": tree}, out
        except BaseException as err:  # KeyboardInterrupt too: an interrupted call is a failed call
            mro = [f"{c.__module__}.{c.__qualname__}" for c in type(err).__mro__]
            message = _safe_str(err)
            return {"id": ident, "ok": False, "error": {"type": mro[0], "mro": mro, "message": message[:4000]}}, []

    def _run(self, request: dict, buffers: list) -> Any:
        op = request["op"]
        payload = self._load(buffers[0]) if buffers else None
        if op == "fetch":
            missing = object()
            found = {name: self.namespace.get(name, missing) for name in request["names"]}
            return {name: value for name, value in found.items() if value is not missing}
        if op == "release":
            self.handles.clear()
            return None
        if op == "probe":
            module = importlib.import_module(request["module"])
            func = getattr(module, request["name"])
            func = getattr(func, "__probe__", func)
            args, kwargs = payload
            return func(*args, **kwargs)
        target = self.handles[request["target"]]
        if op == "call":
            args, kwargs = payload
            return target(*args, **kwargs)
        if op == "getattr":
            return getattr(target, request["name"])
        if op == "setattr":
            setattr(target, request["name"], payload)
            return None
        if op == "getitem":
            return target[payload]
        if op == "len":
            return len(target)
        if op == "items":
            items = list(itertools.islice(iter(target), MAX_ITEMS + 1))
            if len(items) > MAX_ITEMS:
                raise ValueError(f"the grader reads at most {MAX_ITEMS:,} items of an iteration")
            return items
        if op == "repr":
            return repr(target)[:2000]
        raise ValueError(f"unknown request {op!r}")

    def _load(self, data) -> Any:
        agent = self

        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid):
                return agent.handles[pid[1]] if pid[0] == "handle" else agent.namespace[pid[1]]

        return Unpickler(io.BytesIO(bytes(data))).load()


def _safe_str(err: BaseException) -> str:
    try:
        return str(err)
    except BaseException:
        return f"<{type(err).__name__} that cannot be shown>"


def register(kernel) -> None:
    """Answer the referee on the comm target `course.referee` of this IPython kernel."""
    agent = Agent(kernel.shell.user_ns)

    def opened(comm, _msg) -> None:
        def received(msg) -> None:
            reply, buffers = agent.answer(msg["content"]["data"], msg.get("buffers") or [])
            comm.send(reply, buffers=buffers)

        comm.on_msg(received)

    kernel.comm_manager.register_target(TARGET, opened)
