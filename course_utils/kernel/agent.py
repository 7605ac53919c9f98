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
MIRRORED = ("list", "dict")  # argument containers whose in-place changes go back to the referee


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
            value, mirrors = self._run(request, buffers)
            tree, out = wire.encode(value, self.handle)
            trees = []
            for key, kind, obj in mirrors:
                mirror_tree, more = wire.encode(obj, self.handle)
                for node in _buffer_nodes(mirror_tree):
                    node["b"] += len(out)
                out += more
                trees.append({"key": key, "kind": kind, "v": mirror_tree})
            return {"id": ident, "ok": True, "value": tree, "mirrors": trees}, out
        except BaseException as err:  # KeyboardInterrupt too: an interrupted call is a failed call
            mro = [f"{c.__module__}.{c.__qualname__}" for c in type(err).__mro__]
            message = _safe_str(err)
            return {"id": ident, "ok": False, "error": {"type": mro[0], "mro": mro, "message": message[:4000]}}, []

    def _run(self, request: dict, buffers: list) -> tuple[Any, list]:
        op = request["op"]
        payload = self._load(buffers[0]) if buffers else None
        if op == "fetch":
            missing = object()
            found = {name: self.namespace.get(name, missing) for name in request["names"]}
            return {name: value for name, value in found.items() if value is not missing}, []
        if op == "release":
            self.handles.clear()
            return None, []
        if op == "probe":
            module = importlib.import_module(request["module"])
            func = getattr(module, request["name"])
            func = getattr(func, "__probe__", func)
            args, kwargs = payload
            return func(*args, **kwargs), _mirrors(args, kwargs)
        target = self.handles[request["target"]]
        if op == "call":
            args, kwargs = payload
            return target(*args, **kwargs), _mirrors(args, kwargs)
        if op == "getattr":
            return getattr(target, request["name"]), []
        if op == "setattr":
            setattr(target, request["name"], payload)
            return None, []
        if op == "getitem":
            return target[payload], []
        if op == "len":
            return len(target), []
        if op == "items":
            items = list(itertools.islice(iter(target), MAX_ITEMS + 1))
            if len(items) > MAX_ITEMS:
                raise ValueError(f"the grader reads at most {MAX_ITEMS:,} items of an iteration")
            return items, []
        if op == "repr":
            return repr(target)[:2000], []
        raise ValueError(f"unknown request {op!r}")

    def _load(self, data) -> Any:
        agent = self

        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid):
                return agent.handles[pid[1]] if pid[0] == "handle" else agent.namespace[pid[1]]

        return Unpickler(io.BytesIO(bytes(data))).load()


def _mirrors(args: tuple, kwargs: dict) -> list:
    """The arguments whose in-place changes the referee copies back: arrays, tensors, modules, optimizers, lists, dicts."""
    out = []
    for key, value in [*enumerate(args), *kwargs.items()]:
        kind = _mirror_kind(value)
        if kind == "module":
            value = {"state": value.state_dict(keep_vars=True),
                     "training": {name: m.training for name, m in value.named_modules()}}
        elif kind == "optimizer":
            value = value.state_dict()
        if kind:
            out.append((key, kind, value))
    return out


def _mirror_kind(value: Any) -> str | None:
    import sys

    import numpy as np

    torch = sys.modules.get("torch")
    if isinstance(value, np.ndarray) or torch is not None and isinstance(value, torch.Tensor):
        return "value"
    if torch is not None and isinstance(value, torch.nn.Module):
        return "module"
    if torch is not None and isinstance(value, torch.optim.Optimizer):
        return "optimizer"
    if type(value).__name__ in MIRRORED and isinstance(value, (list, dict)):
        return "value"
    return None


def _buffer_nodes(tree: Any):
    """Every node of an encoded tree that points at a buffer (to renumber them when trees share a message)."""
    if isinstance(tree, dict):
        if "b" in tree:
            yield tree
        for value in tree.values():
            yield from _buffer_nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _buffer_nodes(value)


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
