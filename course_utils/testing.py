"""Helpers for the labs' test cells, which run the same way in a student's notebook and in the grader's referee.

In a student's notebook a test cell is ordinary Python. When the notebook is graded, the test cell runs in
the referee, a process the student's code never touches: the names the student defined are proxies that
call into the student's kernel and bring back plain data. The helpers here behave the same in both
places; the ones marked `@probe` run inside the student's kernel in the referee, for observations that
only exist there (gradients flowing through the student's own module, hooks left on it, its random
generator). Tests use them as `cu.testing.<name>`.
"""

from __future__ import annotations

import ast
import contextvars
import copy
import functools
import inspect
import os
import textwrap
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

# The referee's connection to the kernel while a test runs there; None in a student's notebook.
SESSION: contextvars.ContextVar = contextvars.ContextVar("course_referee_session", default=None)


_PARSING = threading.Lock()


def parse(source: str) -> ast.Module:
    """`ast.parse`, one thread at a time: CPython 3.11 can fail with "AST constructor recursion depth mismatch"
    when two threads build syntax trees at once, and the grader's workers are threads of one process."""
    with _PARSING:
        return ast.parse(source)


def fresh_seed() -> int:
    """A new random seed on every call: hidden tests draw their inputs afresh for each grading run."""
    return int.from_bytes(os.urandom(7), "big")


def probe(func: Callable) -> Callable:
    """Mark `func` as an observation made inside the student's kernel: in the referee the call is run there,
    with the arguments copied in, and its result (plain data) comes back."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        session = SESSION.get()
        if session is None:
            return func(*args, **kwargs)
        return session.probe(func.__module__, func.__name__, args, kwargs)

    run.__probe__ = func
    return run


@probe
def vjp(module: Callable, inputs: Iterable, upstream: Any) -> dict:
    """Run `module(*inputs)` with gradients on, back-propagate `upstream` through its output, and report the
    output, the gradient of every input and of every parameter (None where none flowed).

    Returns {"output": tensor, "input_grads": [tensor | None, ...], "param_grads": {name: tensor | None}}.
    """
    import torch

    inputs = [x.detach().clone().requires_grad_(x.is_floating_point()) if isinstance(x, torch.Tensor) else x
              for x in inputs]
    params = dict(module.named_parameters()) if isinstance(module, torch.nn.Module) else {}
    for p in params.values():
        p.grad = None
    out = module(*inputs)
    out.backward(upstream)
    return {"output": out.detach(), "input_grads": [getattr(x, "grad", None) for x in inputs],
            "param_grads": {name: p.grad for name, p in params.items()}}


@probe
def inputs_changed(func: Callable, *args, **kwargs) -> tuple[Any, list[str]]:
    """Call `func(*args, **kwargs)`; return its result and the names of the arguments it changed in place
    ("x", "args[1]", a keyword's name), in the order given.

    Each argument is deep-copied before the call and compared with its copy afterwards: arrays by dtype, shape
    and values (NaN equal to NaN), tensors by these and their `.grad`, lists, tuples and dicts item by item, a
    module by its parameters (gradients included), buffers and modes, an optimizer by its state. In the referee
    this runs in the student's kernel, on the referee's own copies of the arguments, which the student's changes
    never reach: a test sees in-place changes only through this probe.
    """
    given = [*args, *kwargs.values()]
    before = []
    for value in given:
        try:
            before.append(_copy(value))
        except Exception:  # a generator, a lock...: nothing to compare with
            before.append(_UNCOPIED)
    result = func(*args, **kwargs)
    names = _argument_names(func, len(args)) + list(kwargs)
    return result, [name for name, old, new in zip(names, before, given) if old is not _UNCOPIED and not _same(old, new)]


_UNCOPIED = object()


def _copy(value: Any) -> Any:
    """A deep copy of `value` that keeps its parameters' `.grad`, which `copy.deepcopy` drops from a Parameter."""
    import torch

    twin = copy.deepcopy(value)
    pairs = zip(twin.parameters(), value.parameters()) if isinstance(value, torch.nn.Module) else \
        [(twin, value)] if isinstance(value, torch.nn.Parameter) else []
    for mine, theirs in pairs:
        mine.grad = None if theirs.grad is None else theirs.grad.detach().clone()
    return twin


@probe
def call_non_contiguous(func: Callable, *args, **kwargs) -> Any:
    """Call `func` with every tensor argument of two or more dimensions replaced by a non-contiguous view of the
    same values (its first two axes transposed in memory), and return the result, detached if it is a tensor.

    Tensors reach the student's kernel contiguous, so the view is made there: in the referee this runs in the kernel.
    """
    import torch

    def strided(value):
        if isinstance(value, torch.Tensor) and value.dim() >= 2:
            return value.detach().transpose(0, 1).contiguous().transpose(0, 1).requires_grad_(value.requires_grad)
        return value

    result = func(*[strided(a) for a in args], **{k: strided(v) for k, v in kwargs.items()})
    return result.detach() if isinstance(result, torch.Tensor) else result


def _argument_names(func: Callable, count: int) -> list[str]:
    """The names of `func`'s first `count` positional parameters ("args[i]" past them, or without a signature)."""
    target = getattr(func, "forward", func)  # a module's parameters are its forward's
    try:
        params = [p for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i].name if i < len(params) else f"args[{i}]" for i in range(count)]


def _same(old: Any, new: Any) -> bool:
    """Whether `new` holds what `old` (a deep copy taken before the call) held."""
    import numpy as np
    import torch

    if type(old) is not type(new):
        return False
    if isinstance(old, torch.Tensor):
        if old.shape != new.shape or old.dtype != new.dtype or not _same(_grad(old), _grad(new)):
            return False
        old, new = old.detach().cpu(), new.detach().cpu()
        return bool(((old == new) | (old.isnan() & new.isnan())).all()) if old.is_floating_point() or \
            old.is_complex() else torch.equal(old, new)
    if isinstance(old, np.ndarray):
        if old.shape != new.shape or old.dtype != new.dtype:
            return False
        return bool(np.array_equal(old, new, equal_nan=old.dtype.kind in "fc"))
    if isinstance(old, float):
        return old == new or (old != old and new != new)  # NaN holds NaN
    if isinstance(old, (list, tuple)):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new))
    if isinstance(old, dict):
        return list(old) == list(new) and all(_same(old[k], new[k]) for k in old)
    if isinstance(old, torch.nn.Module):
        return _same(old.state_dict(keep_vars=True), new.state_dict(keep_vars=True)) and \
            [m.training for m in old.modules()] == [m.training for m in new.modules()]
    if isinstance(old, torch.optim.Optimizer):
        return _same(old.state_dict(), new.state_dict())
    if type(old).__eq__ is object.__eq__:  # equal only to itself, and `old` is a copy: compare what it holds
        return _same(vars(old), vars(new)) if hasattr(old, "__dict__") else True
    try:
        return bool(old == new)
    except Exception:  # an object that cannot say: not reported
        return True


def _grad(tensor: Any) -> Any:
    """A leaf tensor's `.grad` (None for one inside a graph, whose `.grad` is never filled)."""
    return tensor.grad if tensor.is_leaf else None


@probe
def kernel_copy(obj: Any) -> Any:
    """`obj` itself, made where the student's code runs: in the referee a copy that stays in the student's kernel
    and comes back as a handle, so that the state their functions leave on it (parameters, gradients, buffers,
    modes) can be read after the call. In a notebook it returns `obj` unchanged."""
    return obj


@probe
def hooks_on(module: Any) -> int:
    """How many forward, forward-pre and backward hooks are registered on `module` and its submodules."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in module.modules())


@probe
def call_and_report_hooks(func: Callable, module: Any, *args) -> dict:
    """Call `func(module, *args)`; report whether it raised (and what) and the hooks left on `module` afterwards."""
    try:
        func(module, *args)
        raised = None
    except Exception as err:
        raised = type(err).__name__
    return {"raised": raised, "hooks": hooks_on.__probe__(module)}


@probe
def global_rng_state() -> dict:
    """Fingerprints of the global random generators of torch, NumPy and `random` in the student's kernel."""
    import hashlib
    import random

    import numpy as np
    import torch

    digest = lambda data: hashlib.sha256(repr(data).encode()).hexdigest()
    return {"torch": digest(torch.get_rng_state().tolist()), "numpy": digest(np.random.get_state()[1].tolist()),
            "random": digest(random.getstate())}


@probe
def seed_kernel(seed: int) -> None:
    """Seed the student's global generators (torch, NumPy, random), where their code draws its randomness."""
    import random

    import numpy as np
    import torch

    torch.manual_seed(seed), np.random.seed(seed % 2**32), random.seed(seed)


def source_of(func: Any) -> str:
    """The source of the cell that defines `func` (a function or class the student wrote)."""
    session = SESSION.get()
    if session is not None:
        return session.source_of(func)
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return ""


def calls_in(source: str) -> set[str]:
    """Dotted names of everything `source` calls or refers to (`F.batch_norm`, `torch.autograd.grad`, ...)."""
    try:
        tree = parse(textwrap.dedent(source))
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Name)):
            parts, current = [], node
            while isinstance(current, ast.Attribute):
                parts.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name):
                found.add(".".join([current.id, *reversed(parts)]))
    return found


def check_no_calls(func: Any, forbidden: dict[str, str], what: str) -> None:
    """Fail if the source of `func` uses one of `forbidden` (dotted name or last part -> why it is not allowed)."""
    used = calls_in(source_of(func))
    for name, why in forbidden.items():
        last = name.rsplit(".", 1)[-1]
        hit = sorted(u for u in used if u == name or "." in u and u.rsplit(".", 1)[1] == last)
        if hit:
            raise AssertionError(f"{what} uses {hit[0]}: {why}")


def error_type(err: BaseException) -> list[str]:
    """The qualified class names of `err` and its bases, whether raised here or in the student's kernel."""
    remote = getattr(err, "mro", None)
    if isinstance(remote, list):
        return remote
    return [f"{c.__module__}.{c.__qualname__}" for c in type(err).__mro__]


@contextmanager
def raises(expected: type[BaseException], message: str) -> Iterator[None]:
    """Expect the block to raise `expected` (raised by the student's code here or in their kernel); fail with
    `message` otherwise."""
    name = f"{expected.__module__}.{expected.__qualname__}"
    try:
        yield
    except BaseException as err:
        if name in error_type(err):
            return
        raise AssertionError(f"{message} (it raised {type(err).__name__}: {err})") from None
    raise AssertionError(message)
