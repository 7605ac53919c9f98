"""Autograder checks for hand-written normalization layers: batch norm (statistics over axis 0) and layer norm (axis 1).

The layers follow bn_from_scratch's contract. `forward(x, gamma, beta, eps) -> (out, cache)`, where `cache` is a
dict holding the nodes of the forward graph (`CACHE_KEYS`):

    mu = mean(x),  xc = x - mu,  var = mean(xc**2),  std = sqrt(var + eps),  x_hat = xc / std,  out = gamma * x_hat + beta

with the means over the batch (batch norm: mu, var, std of shape (D,)) or over the features (layer norm: (N, 1)).
A backward pass takes `(dout, cache)`: `backward_nodes` returns the gradient of every node (`NODES`), a compact
backward returns `(dx, dgamma, dbeta)`.

Each check runs an answer on cases that carry their expected results (torch in float64) and the results of
typical slips: by default the fixed cases stored with the course (`bn_cases`), in the hidden tests random ones
from the instructor's oracles. It checks return types, shapes, dtypes and that the inputs are left unchanged,
and names a likely cause only when the answer matches a slip's result. A backward pass is checked on the
reference cache, so a slip in the forward pass costs only the forward pass's test. No reference implementation
is in this module: nothing here computes a layer.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

import numpy as np
import torch

from . import bn_cases
from .testing import check_no_calls, inputs_changed

CACHE_KEYS = ("x", "gamma", "beta", "eps", "mu", "xc", "var", "std", "x_hat")
NODES = ("beta", "gamma", "x_hat", "std", "var", "xc", "mu", "x")  # in the order backpropagation visits them
FEEDS = {"beta": "out", "gamma": "out", "x_hat": "out", "std": "x_hat", "var": "std", "xc": "x_hat and var",
         "mu": "xc", "x": "xc and mu"}  # the nodes each one feeds in the forward graph
LAYER = {0: "batch norm", 1: "layer norm"}
AXIS_WORDS = {0: "over the batch (axis=0)", 1: "over the features (axis=1)"}
TOL = {np.dtype(np.float64): 1e-7, np.dtype(np.float32): 1e-3}  # rel_error allowed against torch in float64
MATCH = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-2}  # rel_error at which a planted slip "matches"
FLOOR = {np.dtype(np.float64): 1e-7, np.dtype(np.float32): 1e-3}  # per entry: below it, differences count as
# absolute ones (TOL * FLOOR), so that values that vanish, or nearly (a batch of one, a probability near 1), pass
OWN_WORK = {"cu": "the course's helpers do not do this exercise: write it yourself",
            "course_utils": "the course's helpers do not do this exercise: write it yourself"}
NUMPY_ONLY = {"torch": "this exercise is NumPy only: torch (and its autograd) may not do the work", **OWN_WORK}


# ---------------------------------------------------------------- cases

def describe(case: dict[str, Any]) -> str:
    """Words for a case, for messages: its shape, dtype and eps."""
    n = case["x"].shape[0]
    return f"for x of shape {case['x'].shape} ({case['x'].dtype}{', a batch of one' if n == 1 else ''}), eps={case['eps']:g}"


# ---------------------------------------------------------------- comparisons

def _error(got: np.ndarray, want: np.ndarray) -> float:
    """rel_error, with a floor so that two gradients that both vanish (a batch of one) compare as equal."""
    floor = FLOOR.get(np.dtype(got.dtype), FLOOR[np.dtype(np.float64)]) * np.sqrt(got.size)
    scale = max(float(np.linalg.norm(got.astype(np.float64)) + np.linalg.norm(want)), floor)
    return float(np.linalg.norm(got.astype(np.float64) - want) / scale)


def check_array(got: Any, want: np.ndarray, dtype: np.dtype, name: str, where: str,
                slips: list[tuple[str, np.ndarray]] = ()) -> None:
    """`got` must be an ndarray of `want`'s shape, of `dtype`, and close to `want` (rel_error below TOL[dtype]).

    A wrong value names a likely cause only when the answer matches one of `slips` (recomputed wrong answers).
    """
    if isinstance(got, torch.Tensor) or not isinstance(got, np.ndarray):
        raise AssertionError(f"{name} should be a NumPy array, but it is a {type(got).__name__} {where}.")
    if got.shape != want.shape:
        raise AssertionError(f"{name} has shape {tuple(got.shape)} but should have shape {tuple(want.shape)} {where}.")
    if got.dtype != dtype:
        raise AssertionError(f"{name} has dtype {got.dtype} but should have dtype {dtype}, the dtype of the inputs, "
                             f"{where}.")
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"{name} contains NaN or infinite values {where}.")
    err = _error(got, want)
    if err < TOL[dtype]:
        return
    cause = next((why for why, wrong in slips if _matches(got, np.asarray(wrong, dtype=np.float64), want, dtype)), None)
    worst = np.unravel_index(int(np.argmax(np.abs(got.astype(np.float64) - want))), want.shape) if want.ndim else ()
    raise AssertionError(
        f"{name} is off {where}: relative error {err:.1e} against torch (it should be below {TOL[dtype]:g}); "
        f"at index {tuple(int(i) for i in worst)} you have {float(got[worst]):.6g}, torch has {float(want[worst]):.6g}. "
        + (f"Likely cause: {cause}." if cause else "Compare that step with your derivation."))


def _matches(got: np.ndarray, wrong: np.ndarray, want: np.ndarray, dtype: np.dtype) -> bool:
    """Whether a wrong answer `got` is the recomputed slip `wrong`: this input must tell the slip apart from the
    right answer `want` (it would fail the test), and `got` must be far closer to the slip than the slip is to it."""
    apart = _error(wrong, want)
    return bool(apart > TOL[dtype] and _error(got, wrong) < min(MATCH[dtype], apart / 10))


def call_leaving_inputs(func: Callable, name: str, *args: Any,
                        hint: str = "work on new arrays: x = x - mu, not x -= mu") -> Any:
    """`func(*args)` on copies of `args`; fail if it changed one of them in place (`testing.inputs_changed`)."""
    result, changed = inputs_changed(func, *copy.deepcopy(args))
    if changed:
        raise AssertionError(f"{name} changed its argument{'s' if len(changed) > 1 else ''} {', '.join(changed)} in "
                             f"place; it must leave its inputs as they were ({hint}).")
    return result


# ---------------------------------------------------------------- forward

def check_forward(forward: Callable, name: str, axis: int = 0, cases: Iterable[dict] | None = None) -> None:
    """Check `forward(x, gamma, beta, eps) -> (out, cache)` on `cases` (default: the stored ones of `axis`): the
    output, every node in the cache, types, shapes, dtypes, inputs left unchanged, and no torch in its source.

    `name` is the function's name in the notebook. Used by bn_from_scratch.
    """
    check_no_calls(forward, {**NUMPY_ONLY, "batch_norm": "compute the mean and variance yourself",
                             "layer_norm": "compute the mean and variance yourself"}, name)
    for case in bn_cases.load(f"forward_{axis}") if cases is None else cases:
        _run_forward(forward, name, case)


def _run_forward(forward: Callable, name: str, case: dict[str, Any]) -> None:
    """One case of `check_forward`: with `case["default_eps"]` the call leaves eps to its default, which must be
    1e-5."""
    x, gamma, beta, eps, default_eps = (case[k] for k in ("x", "gamma", "beta", "eps", "default_eps"))
    result = call_leaving_inputs(forward, name, x, gamma, beta, *(() if default_eps else (eps,)))
    where = describe(case) + (" (eps left to its default, which should be 1e-5)" if default_eps else "")
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError(f"{name} should return a tuple (out, cache), but it returned a "
                             f"{type(result).__name__} {where}.")
    out, cache = result
    expected, slips, dtype = case["expected"], case["slips"], x.dtype
    check_array(out, expected["out"], dtype, f"{name}'s out", where, slips.get("out", []))
    if not isinstance(cache, dict):
        raise AssertionError(f"{name}'s cache should be a dict with the keys {', '.join(CACHE_KEYS)}, but it is a "
                             f"{type(cache).__name__}.")
    missing = [k for k in CACHE_KEYS if k not in cache]
    if missing:
        raise AssertionError(f"{name}'s cache lacks the key(s) {', '.join(map(repr, missing))}; it should hold every "
                             f"node of the forward graph: {', '.join(CACHE_KEYS)}.")
    if not isinstance(cache["eps"], (float, int, np.floating)) or float(cache["eps"]) != eps:
        raise AssertionError(f"{name}'s cache['eps'] is {cache['eps']!r}; it should be the eps it was given, {eps:g}.")
    for key in ("x", "gamma", "beta", "mu", "xc", "var", "std", "x_hat"):
        check_array(cache[key], expected[key], dtype, f"{name}'s cache[{key!r}]", where, slips.get(key, []))


# ---------------------------------------------------------------- backward

def check_backward_nodes(backward_nodes: Callable, name: str, cases: Iterable[dict] | None = None) -> None:
    """Check `backward_nodes(dout, cache) -> {node: gradient}` of batch norm on `cases` (default: the stored ones),
    node by node against torch autograd.

    The cache is the reference one (a wrong forward pass costs nothing here). Nodes are checked in the order
    backpropagation visits them, so the first one reported wrong is the step where the slip is: every node it
    feeds is right. Also: no torch and no autograd in the source, dout and cache unchanged, a dict of NumPy arrays
    of the nodes' shapes and of dout's dtype. Used by bn_from_scratch.
    """
    check_no_calls(backward_nodes, {**NUMPY_ONLY, "backward": "derive the gradients by hand",
                                    "autograd": "derive the gradients by hand"}, name)
    for case in bn_cases.load("backward_nodes") if cases is None else cases:
        grads = call_leaving_inputs(backward_nodes, name, case["dout"], case["cache"])
        if not isinstance(grads, dict):
            raise AssertionError(f"{name} should return a dict mapping each node ({', '.join(NODES)}) to its gradient, "
                                 f"but it returned a {type(grads).__name__}.")
        missing = [k for k in NODES if k not in grads]
        if missing:
            raise AssertionError(f"{name}'s dict lacks the gradient of {', '.join(map(repr, missing))}; it should hold "
                                 f"one for every node: {', '.join(NODES)}.")
        for node in NODES:
            try:
                check_array(grads[node], case["expected"][f"d{node}"], case["dout"].dtype, f"the gradient of {node}",
                            describe(case), case["slips"].get(node, []))
            except AssertionError as err:
                if node in ("beta", "gamma", "x_hat") or "is off" not in str(err):
                    raise
                raise AssertionError(f"{err} The gradients of the nodes it feeds ({FEEDS[node]}) are right, so the "
                                     f"slip is in the step from them to the gradient of {node}.") from None


def check_backward(backward: Callable, name: str, axis: int = 0, cases: Iterable[dict] | None = None,
                   forbidden: dict[str, str] | None = None) -> None:
    """Check `backward(dout, cache) -> (dx, dgamma, dbeta)` on `cases` (default: the stored ones of `axis`), on the
    reference cache with random upstream gradients: values against torch autograd, a tuple of three NumPy arrays
    of the right shapes and dtype, dout and cache unchanged, and no torch, autograd or `forbidden` name in the
    source. Used by bn_from_scratch.
    """
    check_no_calls(backward, {**NUMPY_ONLY, "backward": "derive the gradients by hand",
                              "autograd": "derive the gradients by hand", **(forbidden or {})}, name)
    for case in bn_cases.load(f"backward_{axis}") if cases is None else cases:
        result = call_leaving_inputs(backward, name, case["dout"], case["cache"])
        if not (isinstance(result, tuple) and len(result) == 3):
            raise AssertionError(f"{name} should return a tuple (dx, dgamma, dbeta), but it returned a "
                                 f"{type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (list, tuple)) else "") + ".")
        for key, got in zip(("dx", "dgamma", "dbeta"), result):
            check_array(got, case["expected"][key], case["dout"].dtype, f"{name}'s {key}", describe(case),
                        case["slips"].get(key, []))


# ---------------------------------------------------------------- test mode: running estimates

def check_running_stats(update: Callable, name: str, cases: Iterable[dict] | None = None) -> None:
    """Check `update(running_mean, running_var, x, momentum) -> (running_mean, running_var)` against torch's
    BatchNorm1d on `cases` (default: the stored ones), steps of sequences of training batches of different sizes
    (N >= 2), momenta and feature counts, float32 and float64: a tuple of two new arrays of shape (D,) and x's
    dtype, the old estimates and x unchanged. Used by bn_from_scratch.
    """
    check_no_calls(update, OWN_WORK, name)
    for step in bn_cases.load("running_stats") if cases is None else cases:
        args = [step["running_mean"], step["running_var"], step["x"]]
        result = call_leaving_inputs(update, name, *args, *(() if step["default_momentum"] else (step["momentum"],)),
                                     hint="return new arrays: the caller keeps the old estimates")
        if not (isinstance(result, tuple) and len(result) == 2):
            raise AssertionError(f"{name} should return a tuple (running_mean, running_var), but it returned a "
                                 f"{type(result).__name__}.")
        for got, want, slips, what in zip(result, step["expected"], step["slips"], ("running_mean", "running_var")):
            check_array(got, want, step["x"].dtype, f"{name}'s {what}", step["where"], slips)


def check_forward_test(forward_test: Callable, name: str, cases: Iterable[dict] | None = None) -> None:
    """Check `forward_test(x, gamma, beta, running_mean, running_var, eps) -> out` against torch's BatchNorm1d in
    eval mode on `cases` (default: the stored ones): any batch size (a batch of one included), float32 and
    float64, inputs unchanged. Used by bn_from_scratch.
    """
    check_no_calls(forward_test, {**NUMPY_ONLY, "batch_norm": "normalize with the running estimates yourself"}, name)
    for case in bn_cases.load("forward_test") if cases is None else cases:
        args = case["args"]
        out = call_leaving_inputs(forward_test, name, *(args[k] for k in ("x", "gamma", "beta", "running_mean",
                                                                          "running_var")),
                                  *(() if case["default_eps"] else (case["eps"],)))
        check_array(out, case["expected"], args["x"].dtype, f"{name}'s output", case["where"], case["slips"])
