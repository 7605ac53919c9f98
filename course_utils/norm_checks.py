"""Autograder checks for hand-written normalization layers: batch norm (statistics over axis 0) and layer norm (axis 1).

The layers follow bn_from_scratch's contract. `forward(x, gamma, beta, eps) -> (out, cache)`, where `cache` is a
dict holding the nodes of the forward graph (`CACHE_KEYS`):

    mu = mean(x),  xc = x - mu,  var = mean(xc**2),  std = sqrt(var + eps),  x_hat = xc / std,  out = gamma * x_hat + beta

with the means over the batch (batch norm: mu, var, std of shape (D,)) or over the features (layer norm: (N, 1)).
A backward pass takes `(dout, cache)`: `backward_nodes` returns the gradient of every node (`NODES`), a compact
backward returns `(dx, dgamma, dbeta)`.

Each check draws random sizes (rectangular, a batch of one where the layer allows it), float32 and float64
inputs, gammas of both signs and random upstream gradients; compares with torch in float64; checks return
types, shapes, dtypes and that the inputs are left unchanged; and names a likely cause only after recomputing
the suspected slip and matching the answer. A backward pass is checked on the reference cache, so a slip in
the forward pass costs only the forward pass's test.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

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
# The checks' own torch graphs (below) are no answer to call: an answer may not use the course's helpers at all.
OWN_WORK = {"cu": "the course's helpers do not do this exercise: write it yourself",
            "course_utils": "the course's helpers do not do this exercise: write it yourself"}
NUMPY_ONLY = {"torch": "this exercise is NumPy only: torch (and its autograd) may not do the work", **OWN_WORK}


# ---------------------------------------------------------------- references (torch, float64)

def _norm_graph(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dout: np.ndarray | None = None,
                   axis: int = 0, eps: float = 1e-5) -> dict[str, Any]:
    """The forward graph of batch norm (`axis=0`) or layer norm (`axis=1`) in torch float64, node by node.

    Returns the output "out", every node of `CACHE_KEYS` as float64 arrays and, given an upstream gradient
    `dout`, the gradient of every node of `NODES` under the key "d<node>" (torch autograd, with `retain_grad`).
    "out", "dx", "dgamma" and "dbeta" come from torch's own layer (`_fused`), the nodes from a graph of them.
    Used by bn_from_scratch.
    """
    xt, gt, bt = (torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in (x, gamma, beta))
    with torch.enable_grad():
        mu = xt.mean(dim=axis, keepdim=axis == 1)
        xc = xt - mu
        var = (xc * xc).mean(dim=axis, keepdim=axis == 1)
        std = torch.sqrt(var + eps)
        x_hat = xc / std
        out = gt * x_hat + bt
        nodes = {"x": xt, "gamma": gt, "beta": bt, "mu": mu, "xc": xc, "var": var, "std": std, "x_hat": x_hat}
        for t in nodes.values():
            t.retain_grad()
        if dout is not None:
            out.backward(torch.as_tensor(np.asarray(dout, dtype=np.float64)))
    ref = {name: t.detach().numpy().copy() for name, t in nodes.items()}
    ref["eps"] = float(eps)
    if dout is not None:
        ref.update({f"d{name}": t.grad.numpy().copy() for name, t in nodes.items()})
    ref.update(_fused(x, gamma, beta, dout, axis, eps))
    return ref


def _torch_norm(x: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None, axis: int,
                eps: float) -> torch.Tensor:
    """torch's own layer: batch norm in training mode (`axis=0`, a batch of one allowed) or layer norm (`axis=1`)."""
    if axis == 0:  # the ATen op, since F.batch_norm refuses a batch of one in training mode
        return torch.batch_norm(x, gamma, beta, None, None, True, 0.0, eps, False)
    return F.layer_norm(x, (x.shape[1],), gamma, beta, eps)


def _fused(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dout: np.ndarray | None, axis: int,
           eps: float) -> dict[str, np.ndarray]:
    """"out" and, given `dout`, "dx", "dgamma", "dbeta" from torch's fused layer and autograd, in float64."""
    xt, gt, bt = (torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in (x, gamma, beta))
    with torch.enable_grad():
        out = _torch_norm(xt, gt, bt, axis, eps)
        if dout is not None:
            out.backward(torch.as_tensor(np.asarray(dout, dtype=np.float64)))
    ref = {"out": out.detach().numpy().copy()}
    if dout is not None:
        ref.update(dx=xt.grad.numpy().copy(), dgamma=gt.grad.numpy().copy(), dbeta=bt.grad.numpy().copy())
    return ref


def _reference_cache(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5, axis: int = 0) -> dict:
    """The cache a correct forward pass returns (`CACHE_KEYS`), in the dtype of `x`. Used by bn_from_scratch."""
    ref = _norm_graph(x, gamma, beta, axis=axis, eps=eps)
    cache = {key: ref[key].astype(x.dtype) for key in CACHE_KEYS if key != "eps"}
    cache.update(x=x.copy(), gamma=gamma.copy(), beta=beta.copy(), eps=float(eps))
    return cache


def _bn_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, dict]:
    """Batch norm in training mode with bn_from_scratch's contract, by torch: (out, cache) in the dtype of `x`.

    The tests hand it to a student's later functions in place of their own. Used by bn_from_scratch.
    """
    ref = _norm_graph(x, gamma, beta, axis=0, eps=eps)
    return ref["out"].astype(x.dtype), _reference_cache(x, gamma, beta, eps, axis=0)


def _bn_backward(dout: np.ndarray, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dgamma, dbeta) of batch norm by torch autograd, from a cache of `CACHE_KEYS`, in the dtype of `dout`.

    Used by bn_from_scratch.
    """
    ref = _norm_graph(cache["x"], cache["gamma"], cache["beta"], dout, axis=0, eps=cache["eps"])
    return tuple(ref[k].astype(dout.dtype) for k in ("dx", "dgamma", "dbeta"))


# ---------------------------------------------------------------- random cases

def draw_case(rng: np.random.Generator, axis: int = 0, dtype: Any = np.float64, n: int | None = None,
              d: int | None = None) -> dict[str, Any]:
    """Random inputs of a normalization layer: x (n, d) with features of different means and scales, gamma of
    both signs, beta, a random upstream gradient dout, and eps. Sizes are drawn unless given."""
    dtype = np.dtype(dtype)
    if axis == 0:
        n = int(rng.integers(2, 17)) if n is None else n
        d = int(rng.integers(1, 9)) if d is None else d
    else:
        n = int(rng.integers(1, 9)) if n is None else n
        d = int(rng.integers(2, 17)) if d is None else d
    size = (d,) if axis == 0 else (n, 1)
    # float32 keeps 7 digits: milder offsets there, so that every correct way of computing the variance passes.
    spread, scales = ((0, 3), (0.3, 3)) if dtype == np.float64 else ((0, 1), (0.5, 2))
    loc, scale = rng.normal(*spread, size=size), rng.uniform(*scales, size=size)
    x = rng.normal(loc, scale, size=(n, d))
    gamma = rng.uniform(0.5, 2.0, size=d) * rng.choice([-1.0, 1.0], size=d)
    return {"x": x.astype(dtype), "gamma": gamma.astype(dtype), "beta": rng.normal(size=d).astype(dtype),
            "dout": rng.normal(size=(n, d)).astype(dtype), "eps": float(rng.choice([1e-5, 1e-3]))}


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

def _forward_slips(case: dict[str, Any], axis: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Wrong outputs and caches that typical slips produce, recomputed on this case with torch in float64."""
    x, gamma, beta = (torch.from_numpy(np.asarray(case[k], dtype=np.float64)) for k in ("x", "gamma", "beta"))
    eps = case["eps"]
    layer, other = LAYER[axis], 1 - axis
    keep = axis == 1
    n = x.shape[axis]
    words = {
        "axis": f"it takes the statistics {AXIS_WORDS[other]}, but {layer} takes them {AXIS_WORDS[axis]}",
        "ddof": f"it uses the unbiased variance (dividing by n - 1); {layer} divides by n (np.var's default ddof=0)",
        "eps_out": "eps is added to the standard deviation; it belongs inside the square root, sqrt(var + eps)",
        "no_eps": "eps is missing: the standard deviation is sqrt(var + eps)",
        "swap": "gamma and beta are swapped: out = gamma * x_hat + beta",
    }
    out = {"out": [], "var": [], "std": [], "x_hat": [], "mu": [], "xc": []}
    if n > 1 or axis == 1:
        out["out"].append((words["axis"], _torch_norm(x, gamma, beta, other, eps)))
        out["mu"].append((words["axis"], x.mean(dim=other, keepdim=True)))
    xc = x - x.mean(dim=axis, keepdim=True)
    if n > 1:
        unbiased = torch.var(x, dim=axis, correction=1, keepdim=keep)
        sigma = torch.sqrt(unbiased + eps)
        x_hat = xc / sigma
        out["out"].append((words["ddof"], gamma * x_hat + beta))
        out["var"].append((words["ddof"], unbiased))
        out["std"].append((words["ddof"], sigma))
        out["x_hat"].append((words["ddof"], x_hat))
        std = torch.std(x, dim=axis, correction=0, keepdim=keep)
        out["out"].append((words["eps_out"], gamma * xc / (std + eps) + beta))
        out["out"].append((words["no_eps"], gamma * xc / std + beta))
        out["std"].append((words["eps_out"], std + eps))
        out["std"].append((words["no_eps"], std))
    out["out"].append((words["swap"], beta * _torch_norm(x, None, None, axis, eps) + gamma))
    return {node: [(why, wrong.numpy()) for why, wrong in slips] for node, slips in out.items()}


def check_forward(forward: Callable, name: str, axis: int = 0, trials: int = 5, seed: int = 0,
                  dtypes: tuple = (np.float64, np.float32), batch_of_one: bool = True) -> None:
    """Check `forward(x, gamma, beta, eps) -> (out, cache)` against torch on random inputs: the output, every
    node in the cache, types, shapes, dtypes, inputs left unchanged, and no torch in its source.

    `name` is the function's name in the notebook. Trials alternate between `dtypes`; with `batch_of_one` one
    trial has a single row (batch norm then returns beta: a point normalized alone). Used by bn_from_scratch.
    """
    check_no_calls(forward, {**NUMPY_ONLY, "batch_norm": "compute the mean and variance yourself",
                             "layer_norm": "compute the mean and variance yourself"}, name)
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype(dtypes[trial % len(dtypes)])
        n = 1 if batch_of_one and trial == 1 else (int(rng.integers(4, 17)) if dtype == np.float32 else None)
        case = draw_case(rng, axis, dtype, n=n if axis == 0 or n == 1 else None, d=n if axis == 1 and n != 1 else None)
        if trial == 0:
            case["eps"] = 1e-5
        run_forward(forward, name, case, axis, default_eps=trial == 0)


def run_forward(forward: Callable, name: str, case: dict[str, Any], axis: int = 0, default_eps: bool = False) -> None:
    """One case of `check_forward`; with `default_eps` the call leaves eps to its default, which must be 1e-5."""
    x, gamma, beta, eps = case["x"], case["gamma"], case["beta"], case["eps"]
    result = call_leaving_inputs(forward, name, x, gamma, beta, *(() if default_eps else (eps,)))
    where = describe(case) + (" (eps left to its default, which should be 1e-5)" if default_eps else "")
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError(f"{name} should return a tuple (out, cache), but it returned a "
                             f"{type(result).__name__} {where}.")
    out, cache = result
    ref = _norm_graph(case["x"], case["gamma"], case["beta"], axis=axis, eps=eps)
    slips = _forward_slips(case, axis)
    dtype = case["x"].dtype
    check_array(out, ref["out"], dtype, f"{name}'s out", where, slips["out"])
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
        check_array(cache[key], ref[key], dtype, f"{name}'s cache[{key!r}]", where, slips.get(key, []))


# ---------------------------------------------------------------- backward

def _node_slips(case: dict[str, Any], ref: dict[str, np.ndarray]) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Wrong node gradients that typical slips of a batch-norm backward pass produce (float64)."""
    n = case["x"].shape[0]
    dxh, std = ref["dx_hat"], ref["std"]
    return {
        "beta": [("it sums the layer's outputs; beta enters every output with weight 1, so its gradient is the sum "
                  "of dout over the batch", ref["out"].sum(axis=0)),
                 ("it sums outputs times dout; beta enters every output with weight 1", (ref["out"] * case["dout"]).sum(axis=0))],
        "gamma": [("it sums dout * x; gamma multiplies x_hat, so its gradient sums dout * x_hat",
                   (case["dout"] * case["x"]).sum(axis=0))],
        "xc": [("it keeps only the path through x_hat and forgets that xc also feeds var", dxh / std)],
        "x": [("it keeps only the direct path and forgets that x also feeds mu (and through it xc)", ref["dxc"]),
              ("it divides the gradient from mu by nothing: mu is a mean, so each x_i gets 1/N of it",
               ref["dxc"] + ref["dmu"]),
              ("it forgets the paths through the mean and the variance (x treated like an elementwise input)",
               dxh / std)],
        "var": [("it forgets the factor 1/2 of the derivative of a square root", ref["dstd"] / std)],
        "std": [("the sign is flipped: x_hat = xc / std falls as std grows", -ref["dstd"])],
        "mu": [("it sums over the wrong axis or forgets the minus sign: xc = x - mu", -ref["dmu"])] if n > 1 else [],
    }


def check_backward_nodes(backward_nodes: Callable, name: str, trials: int = 5, seed: int = 0,
                         dtypes: tuple = (np.float64, np.float32), batch_of_one: bool = True) -> None:
    """Check `backward_nodes(dout, cache) -> {node: gradient}` of batch norm against torch autograd, node by node.

    The cache is the reference one (a wrong forward pass costs nothing here). Nodes are checked in the order
    backpropagation visits them, so the first one reported wrong is the step where the slip is: every node it
    feeds is right. Also: no torch and no autograd in the source or at run time, dout and cache unchanged,
    a dict of NumPy arrays of the nodes' shapes and of dout's dtype. Used by bn_from_scratch.
    """
    check_no_calls(backward_nodes, {**NUMPY_ONLY, "backward": "derive the gradients by hand",
                                    "autograd": "derive the gradients by hand"}, name)
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype(dtypes[trial % len(dtypes)])
        n = 1 if batch_of_one and trial == 1 else (int(rng.integers(4, 17)) if dtype == np.float32 else None)
        case = draw_case(rng, 0, dtype, n=n)
        cache = _reference_cache(case["x"], case["gamma"], case["beta"], case["eps"])
        ref = _norm_graph(case["x"], case["gamma"], case["beta"], case["dout"], eps=case["eps"])
        grads = call_leaving_inputs(backward_nodes, name, case["dout"], cache)
        where = describe(case)
        if not isinstance(grads, dict):
            raise AssertionError(f"{name} should return a dict mapping each node ({', '.join(NODES)}) to its gradient, "
                                 f"but it returned a {type(grads).__name__}.")
        missing = [k for k in NODES if k not in grads]
        if missing:
            raise AssertionError(f"{name}'s dict lacks the gradient of {', '.join(map(repr, missing))}; it should hold "
                                 f"one for every node: {', '.join(NODES)}.")
        slips = _node_slips(case, ref)
        for node in NODES:
            try:
                check_array(grads[node], ref[f"d{node}"], dtype, f"the gradient of {node}", where, slips.get(node, []))
            except AssertionError as err:
                if node in ("beta", "gamma", "x_hat") or "is off" not in str(err):
                    raise
                raise AssertionError(f"{err} The gradients of the nodes it feeds ({FEEDS[node]}) are right, so the "
                                     f"slip is in the step from them to the gradient of {node}.") from None


def check_backward(backward: Callable, name: str, axis: int = 0, trials: int = 5, seed: int = 0,
                   dtypes: tuple = (np.float64, np.float32), batch_of_one: bool = True,
                   forbidden: dict[str, str] | None = None) -> None:
    """Check `backward(dout, cache) -> (dx, dgamma, dbeta)` against torch autograd on the reference cache, with
    random upstream gradients: values, a tuple of three NumPy arrays of the right shapes and dtype, dout and cache
    unchanged, and no torch or autograd in the source or at run time. Used by bn_from_scratch.
    """
    check_no_calls(backward, {**NUMPY_ONLY, "backward": "derive the gradients by hand",
                              "autograd": "derive the gradients by hand", **(forbidden or {})}, name)
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype(dtypes[trial % len(dtypes)])
        small = int(rng.integers(4, 17)) if dtype == np.float32 else None
        n = 1 if batch_of_one and trial == 1 else (small if axis == 0 else None)
        case = draw_case(rng, axis, dtype, n=n, d=small if axis == 1 else None)
        cache = _reference_cache(case["x"], case["gamma"], case["beta"], case["eps"], axis=axis)
        ref = _norm_graph(case["x"], case["gamma"], case["beta"], case["dout"], axis=axis, eps=case["eps"])
        result = call_leaving_inputs(backward, name, case["dout"], cache)
        if not (isinstance(result, tuple) and len(result) == 3):
            raise AssertionError(f"{name} should return a tuple (dx, dgamma, dbeta), but it returned a "
                                 f"{type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (list, tuple)) else "") + ".")
        slips = _triple_slips(case, axis, ref)
        for key, got in zip(("dx", "dgamma", "dbeta"), result):
            check_array(got, ref[key], dtype, f"{name}'s {key}", describe(case), slips[key])


def _dx_cut(case: dict[str, Any], axis: int, cut: tuple[str, ...]) -> np.ndarray:
    """dx by torch autograd through the normalization's nodes with the paths through the nodes in `cut`
    ("mu", "var") removed (detached): the gradient of a backward pass that forgets those paths."""
    x = torch.tensor(np.asarray(case["x"], dtype=np.float64), requires_grad=True)
    gamma, dout = (torch.from_numpy(np.asarray(case[k], dtype=np.float64)) for k in ("gamma", "dout"))
    with torch.enable_grad():
        mu = x.mean(dim=axis, keepdim=True)
        xc = x - (mu.detach() if "mu" in cut else mu)
        var = (xc * xc).mean(dim=axis, keepdim=True)
        std = torch.sqrt((var.detach() if "var" in cut else var) + case["eps"])
        (dx,) = torch.autograd.grad(gamma * xc / std, x, dout)
    return dx.numpy()


def _gamma_outside(case: dict[str, Any]) -> np.ndarray:
    """Layer norm's dx with gamma taken out of the sums: gamma times the gradient that dout alone (not gamma * dout)
    sends through the normalization, by torch autograd."""
    x = torch.tensor(np.asarray(case["x"], dtype=np.float64), requires_grad=True)
    gamma, dout = (torch.from_numpy(np.asarray(case[k], dtype=np.float64)) for k in ("gamma", "dout"))
    with torch.enable_grad():
        (dx,) = torch.autograd.grad(_torch_norm(x, None, None, 1, case["eps"]), x, dout)
    return (gamma * dx).numpy()


def _triple_slips(case: dict[str, Any], axis: int, ref: dict[str, np.ndarray]) -> dict[str, list[tuple[str, np.ndarray]]]:
    x, dout = (np.asarray(case[k], dtype=np.float64) for k in ("x", "dout"))
    dx = [("it only keeps the direct path gamma * dout / std and forgets that x also reaches the output through the "
           "mean and the variance", _dx_cut(case, axis, ("mu", "var"))),
          ("it forgets the path through the variance (the term with x_hat times a sum of dout * x_hat)",
           _dx_cut(case, axis, ("var",))),
          ("it forgets the path through the mean (the term with a sum of dout)", _dx_cut(case, axis, ("mu",)))]
    if axis == 1:
        dx.append(("gamma is taken out of the sums over the features, but in layer norm gamma varies along the axis "
                   "that is summed: the gradient reaching x_hat is gamma * dout, and both sums need it",
                   _gamma_outside(case)))
    return {
        "dx": dx,
        "dgamma": [("it sums dout * x; gamma multiplies x_hat, so dgamma sums dout * x_hat over the batch",
                    (dout * x).sum(axis=0))],
        "dbeta": [("it sums the layer's outputs; dbeta is the sum of the upstream gradient dout over the batch",
                   ref["out"].sum(axis=0)),
                  ("it sums the outputs times dout; beta enters with weight 1, so dbeta is the sum of dout itself",
                   (ref["out"] * dout).sum(axis=0))],
    }


# ---------------------------------------------------------------- test mode: running estimates

def _bn_layer(d: int, momentum: float = 0.1, eps: float = 1e-5) -> torch.nn.BatchNorm1d:
    return torch.nn.BatchNorm1d(d, eps=eps, momentum=momentum, dtype=torch.float64)


def check_running_stats(update: Callable, name: str, trials: int = 4, seed: int = 0) -> None:
    """Check `update(running_mean, running_var, x, momentum) -> (running_mean, running_var)` against torch's
    BatchNorm1d over a sequence of training batches of different sizes (N >= 2), momenta and feature counts,
    float32 and float64: a tuple of two new arrays of shape (D,) and x's dtype, the old estimates and x unchanged.
    Used by bn_from_scratch.
    """
    check_no_calls(update, OWN_WORK, name)
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype([np.float64, np.float32][trial % 2])
        d, momentum = int(rng.integers(1, 9)), 0.1 if trial == 0 else float(rng.uniform(0.01, 0.5))
        layer = _bn_layer(d, momentum)
        running_mean, running_var = np.zeros(d, dtype=dtype), np.ones(d, dtype=dtype)
        sizes = [int(rng.integers(2, 17)) for _ in range(int(rng.integers(2, 6)))]
        for step, n in enumerate(sizes):
            x = rng.normal(rng.normal(0, 3, size=d), rng.uniform(0.5, 3, size=d), size=(n, d)).astype(dtype)
            before = (running_mean, running_var, x)
            result = call_leaving_inputs(update, name, *before, *(() if trial == 0 else (momentum,)),  # trial 0: 0.1
                                         hint="return new arrays: the caller keeps the old estimates")
            if not (isinstance(result, tuple) and len(result) == 2):
                raise AssertionError(f"{name} should return a tuple (running_mean, running_var), but it returned a "
                                     f"{type(result).__name__}.")
            mean_prev, var_prev = before[0].astype(np.float64), before[1].astype(np.float64)
            layer.running_mean.copy_(torch.from_numpy(mean_prev))
            layer.running_var.copy_(torch.from_numpy(var_prev))
            with torch.no_grad():
                layer.train()(torch.from_numpy(x.astype(np.float64)))
            xd, old_mean, old_var = (torch.from_numpy(a) for a in (x.astype(np.float64), mean_prev, var_prev))
            batch_mean = xd.mean(dim=0)
            biased, unbiased = (torch.var(xd, dim=0, correction=k) for k in (0, 1))
            where = (f"after batch {step + 1} of {len(sizes)} (sizes {sizes}, momentum {momentum:.3g}, "
                     f"D={d}, {dtype}{', momentum left to its default, which should be 0.1' if trial == 0 else ''})")
            mean_slips = [("the momentum weights are swapped: the new estimate is (1 - momentum) * old + momentum * "
                           "batch", (momentum * old_mean + (1 - momentum) * batch_mean).numpy())]
            var_slips = [("it feeds the biased batch variance into the running variance; torch feeds the unbiased one "
                          "(ddof=1), since it estimates the variance of the data",
                          ((1 - momentum) * old_var + momentum * biased).numpy()),
                         ("the momentum weights are swapped: the new estimate is (1 - momentum) * old + momentum * "
                          "batch", (momentum * old_var + (1 - momentum) * unbiased).numpy())]
            check_array(result[0], layer.running_mean.numpy(), dtype, f"{name}'s running_mean", where, mean_slips)
            check_array(result[1], layer.running_var.numpy(), dtype, f"{name}'s running_var", where, var_slips)
            running_mean, running_var = result[0].copy(), result[1].copy()


def check_forward_test(forward_test: Callable, name: str, trials: int = 4, seed: int = 0) -> None:
    """Check `forward_test(x, gamma, beta, running_mean, running_var, eps) -> out` against torch's BatchNorm1d in
    eval mode: any batch size (a batch of one included), float32 and float64, inputs unchanged. Used by bn_from_scratch.
    """
    check_no_calls(forward_test, {**NUMPY_ONLY, "batch_norm": "normalize with the running estimates yourself"}, name)
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype([np.float64, np.float32][trial % 2])
        d, n = int(rng.integers(1, 9)), 1 if trial == 1 else int(rng.integers(2, 17))
        eps = 1e-5 if trial == 0 else float(rng.choice([1e-5, 1e-3]))
        args = {"x": rng.normal(rng.normal(0, 3, size=d), rng.uniform(0.5, 3, size=d), size=(n, d)),
                "gamma": rng.uniform(0.5, 2, size=d) * rng.choice([-1, 1], size=d), "beta": rng.normal(size=d),
                "running_mean": rng.normal(0, 3, size=d), "running_var": rng.uniform(0.3, 5, size=d)}
        args = {k: v.astype(dtype) for k, v in args.items()}
        out = call_leaving_inputs(forward_test, name, *args.values(), *(() if trial == 0 else (eps,)))  # trial 0: default eps
        layer = _bn_layer(d, eps=eps)
        with torch.no_grad():
            for attr, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "running_mean"),
                              ("running_var", "running_var")):
                getattr(layer, attr).copy_(torch.from_numpy(args[key].astype(np.float64)))
            want = layer.eval()(torch.from_numpy(args["x"].astype(np.float64))).numpy()
        a = {k: torch.from_numpy(v.astype(np.float64)) for k, v in args.items()}
        slips = [("it normalizes with the statistics of the batch it is given; in test mode batch norm uses the "
                  "running estimates, so a prediction does not depend on the rest of the batch",
                  _torch_norm(a["x"], a["gamma"], a["beta"], 0, eps).numpy()),
                 ("it divides by the running variance; divide by the running standard deviation, sqrt(running_var + eps)",
                  (a["gamma"] * (a["x"] - a["running_mean"]) / (a["running_var"] + eps) + a["beta"]).numpy())]
        where = f"for x of shape {(n, d)} ({dtype}{', a batch of one' if n == 1 else ''}), eps={eps:g}" + (
            " (eps left to its default, which should be 1e-5)" if trial == 0 else "")
        check_array(out, want, dtype, f"{name}'s output", where, slips)
