"""Autograder checks for hand-written normalization layers (batch norm over axis 0, layer norm over axis 1).

Each check draws random shapes, gammas, betas and upstream gradients, compares the student's
NumPy functions with torch in float64, and names the quantity that is off, by how much, and which
typical slip it matches.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_dtype, check_shape, check_type, check_unchanged
from .gradcheck import forbid_autograd, rel_error

TOL = 1e-7
LAYER = {0: "batch norm", 1: "layer norm"}
AXIS_WORDS = {0: "over the batch (axis=0)", 1: "over the features (axis=1)"}


def norm_reference(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dout: np.ndarray, axis: int = 0,
                   eps: float = 1e-5) -> dict[str, np.ndarray]:
    """out, dx, dgamma, dbeta of batch norm (`axis=0`) or layer norm (`axis=1`) by torch in float64.

    The oracle of the checks below: torch's own `batch_norm` / `layer_norm` and their backward.
    Used by bn_from_scratch.
    """
    xt, gt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, gamma, beta))
    with torch.enable_grad():
        if axis == 0:
            out = F.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
        else:
            out = F.layer_norm(xt, (x.shape[1],), gt, bt, eps=eps)
        out.backward(torch.as_tensor(dout, dtype=torch.float64))
    return {"out": out.detach().numpy(), "dx": xt.grad.numpy(), "dgamma": gt.grad.numpy(), "dbeta": bt.grad.numpy()}


def _draw(rng: np.random.Generator, axis: int) -> dict[str, Any]:
    """Random inputs; the normalized axis has at least 4 entries (with 2 the layer's dx is exactly zero)."""
    n, d = (int(rng.integers(4, 17)), int(rng.integers(1, 9))) if axis == 0 else (int(rng.integers(1, 9)), int(rng.integers(4, 17)))
    x = rng.normal(rng.normal(0, 3, size=d), rng.uniform(0.3, 3, size=d), size=(n, d))
    gamma = rng.uniform(0.5, 2.0, size=d) * rng.choice([-1.0, 1.0], size=d)
    return {"x": x, "gamma": gamma, "beta": rng.normal(size=d), "dout": rng.normal(size=(n, d)),
            "eps": float(rng.choice([1e-5, 1e-3]))}


def _normalize(x: np.ndarray, axis: int, eps: float, ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
    sigma = np.sqrt(x.var(axis=axis, ddof=ddof, keepdims=True) + eps)
    return (x - x.mean(axis=axis, keepdims=True)) / sigma, sigma


def _forward_slips(case: dict[str, Any], axis: int) -> list[tuple[str, np.ndarray]]:
    x, gamma, beta, eps = case["x"], case["gamma"], case["beta"], case["eps"]
    layer, other = LAYER[axis], 1 - axis
    slips = [
        (f"it normalizes {AXIS_WORDS[other]}, but {layer} takes the mean and variance {AXIS_WORDS[axis]}",
         gamma * _normalize(x, other, eps)[0] + beta),
        (f"it uses the unbiased variance (dividing by n - 1); {layer} divides by n, e.g. np.var(..., ddof=0)",
         gamma * _normalize(x, axis, eps, ddof=1)[0] + beta),
        ("eps is added to the standard deviation; it belongs inside the square root, sqrt(var + eps)",
         gamma * (x - x.mean(axis=axis, keepdims=True)) / (x.std(axis=axis, keepdims=True) + eps) + beta),
    ]
    return slips


def _backward_slips(case: dict[str, Any], axis: int, ref: dict[str, np.ndarray]) -> dict[str, list[tuple[str, np.ndarray]]]:
    x, gamma, dout, eps = case["x"], case["gamma"], case["dout"], case["eps"]
    x_hat, sigma = _normalize(x, axis, eps)
    g = dout * gamma  # the gradient reaching x_hat
    mean = lambda a: a.mean(axis=axis, keepdims=True)
    return {
        "dx": [
            ("it only keeps the direct path gamma * dout / sigma and forgets that x also reaches the output "
             "through the mean and the variance", g / sigma),
            ("it forgets the path through the variance (the term with x_hat * sum(dout * x_hat))",
             (g - mean(g)) / sigma),
            ("it forgets the path through the mean (the term with sum(dout))", (g - x_hat * mean(g * x_hat)) / sigma),
        ],
        "dgamma": [("it sums dout * x; gamma multiplies x_hat, so dgamma sums dout * x_hat over the batch",
                    (dout * x).sum(axis=0))],
        "dbeta": [("it sums the layer's outputs; dbeta is the sum of the upstream gradient dout over the batch",
                   ref["out"].sum(axis=0)),
                  ("it sums the outputs times dout; beta enters with weight 1, so dbeta is the sum of dout itself",
                   (ref["out"] * dout).sum(axis=0))],
    }


def _compare(got: Any, want: np.ndarray, name: str, where: str, slips: list[tuple[str, np.ndarray]]) -> None:
    check_type(got, np.ndarray, name)
    check_shape(got, want.shape, name)
    check_dtype(got, np.dtype(np.float64), name)
    err = rel_error(got, want)
    if err < TOL:
        return
    cause = next((why for why, wrong in slips if rel_error(got, wrong) < 1e-6), None)
    raise AssertionError(
        f"{name} is off {where}: relative error {err:.1e} against torch (it should be below {TOL:g}). "
        + (f"Likely cause: {cause}." if cause else "Compare it step by step with the derivation.")
    )


def _describe(case: dict[str, Any]) -> str:
    return f"for x of shape {case['x'].shape} and eps={case['eps']:g}"


def _run_forward(forward: Callable, case: dict[str, Any], name: str) -> tuple[np.ndarray, Any]:
    x = case["x"].copy()
    result = forward(x, case["gamma"].copy(), case["beta"].copy(), case["eps"])
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError(f"{name} should return a pair (out, cache), but it returned {type(result).__name__}.")
    check_unchanged(case["x"], x, "x", f"{name} must not modify its input in place.")
    return result


def check_norm_forward(forward: Callable, axis: int = 0, trials: int = 5, seed: int = 0) -> None:
    """Check `forward(x, gamma, beta, eps) -> (out, cache)` on random inputs against torch. Used by bn_from_scratch."""
    rng = np.random.default_rng(seed)
    name = getattr(forward, "__name__", "forward")
    for _ in range(trials):
        case = _draw(rng, axis)
        out, _ = _run_forward(forward, case, name)
        ref = norm_reference(**case, axis=axis)
        _compare(out, ref["out"], f"{name}'s out", _describe(case), _forward_slips(case, axis))


def check_norm_backward(forward: Callable, backward: Callable, axis: int = 0, trials: int = 5, seed: int = 0) -> None:
    """Check `backward(dout, cache) -> (dx, dgamma, dbeta)` against torch autograd, with a random upstream gradient.

    The forward pass must be right first; the backward pass must not call autograd itself.
    Used by bn_from_scratch.
    """
    rng = np.random.default_rng(seed)
    fname, bname = getattr(forward, "__name__", "forward"), getattr(backward, "__name__", "backward")
    for _ in range(trials):
        case = _draw(rng, axis)
        out, cache = _run_forward(forward, case, fname)
        ref = norm_reference(**case, axis=axis)
        if not (isinstance(out, np.ndarray) and out.shape == ref["out"].shape and rel_error(out, ref["out"]) < TOL):
            raise AssertionError(f"{fname} does not pass its own test yet; fix it first, since {bname} "
                                 f"starts from its cache.")
        dout = case["dout"].copy()
        with forbid_autograd(bname):
            result = backward(dout, cache)
        if not (isinstance(result, tuple) and len(result) == 3):
            raise AssertionError(f"{bname} should return a triple (dx, dgamma, dbeta), but it returned "
                                 f"{type(result).__name__}.")
        check_unchanged(case["dout"], dout, "dout", f"{bname} must not modify the upstream gradient in place.")
        slips = _backward_slips(case, axis, ref)
        for key, got in zip(("dx", "dgamma", "dbeta"), result):
            _compare(got, ref[key], f"{bname}'s {key}", _describe(case), slips[key])
