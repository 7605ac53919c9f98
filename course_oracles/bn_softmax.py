"""References of bn_from_scratch's classifier exercises, and the random cases its hidden tests grade them on.

The references are torch in float64: cross-entropy and its gradient, the classifier's loss and gradients by
autograd through `cu.bn_softmax.torch_replica`, and every node's gradient of the replica. Each `*_cases` generator
attaches to its inputs the expected results and the results of typical slips; the classifier's cases also record
the reference layers' results for the calls a correct answer makes (`cu.bn_softmax.Replay`), so the layers a
student's function is handed are no reference either. The hidden tests call the `check_*` functions here with a
fresh seed; the visible checks use stored cases made by the same generators (`course_oracles.bn_cases`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from course_utils import bn_softmax as bs

from . import norm_checks as nco

OTHER_EPS, OTHER_SCALES = 0.25, (3.0, 2.0)  # the other layers: bn_forward's eps, the loss's and backward's factors


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean cross-entropy, its gradient) by torch in float64, the gradient in the dtype of `logits`."""
    z = torch.tensor(np.asarray(logits, dtype=np.float64), requires_grad=True)
    with torch.enable_grad():
        loss = F.cross_entropy(z, torch.as_tensor(np.asarray(y, dtype=np.int64)))
        loss.backward()
    return float(loss.detach()), z.grad.numpy().astype(logits.dtype)


def replica_grads(X: np.ndarray, y: np.ndarray, params: dict, sqrt_slip: bool = False,
                  eps: float = 1e-5) -> dict[str, np.ndarray]:
    """The gradient of the loss at every node of `cu.bn_softmax.torch_replica`, by `retain_grad`."""
    loss, nodes = bs.torch_replica(X, y, params, eps=eps, sqrt_slip=sqrt_slip)
    for t in nodes.values():
        t.retain_grad()
    loss.backward()
    return {name: t.grad.numpy().copy() for name, t in nodes.items()}


def _softmax_slips(logits: np.ndarray, labels: np.ndarray, want: np.ndarray) -> list[list]:
    z = torch.from_numpy(logits.astype(np.float64))
    onehot = F.one_hot(torch.from_numpy(np.asarray(labels, dtype=np.int64)), z.shape[1]).to(torch.float64)
    over_batch = ((torch.softmax(z, dim=0) - onehot) / len(labels)).numpy()
    return [["it returns the gradient of the summed loss: the loss is a mean, so dlogits carries a factor 1/N",
             want * len(labels)],
            ["it takes the softmax over the batch (axis=0); each row is one example's distribution over classes",
             over_batch],
            ["the sign is flipped: the gradient is (softmax - onehot) / N", -want]]


def softmax_cases(trials: int, seed: int, scales: tuple = (1.0, 5.0, 1000.0)) -> Iterator[dict[str, Any]]:
    """Cases of `cu.bn_softmax.check_softmax_cross_entropy`: random sizes (a batch of one in the second trial),
    float32 and float64, logits of every size in `scales` (large ones overflow a naive exp); then two fixed cases
    where the true class's logit lies far below the row's largest."""
    rng = np.random.default_rng(seed)
    cases = []
    for trial in range(trials):
        dtype, scale = np.dtype(nco.DTYPES[trial % 2]), scales[trial % len(scales)]
        n, c = 1 if trial == 1 else int(rng.integers(1, 21)), int(rng.integers(2, 9))
        logits = (scale * rng.normal(size=(n, c)) + rng.normal(0, scale, size=(n, 1))).astype(dtype)
        cases.append((logits, rng.integers(0, c, size=n), scale))
    cases += [(np.array([[1000.0, 0.0, -1000.0], [-500.0, 2000.0, 0.0]], dtype=dtype), np.array([2, 0]), 1000.0)
              for dtype in nco.DTYPES]
    for logits, labels, scale in cases:
        loss, want = softmax_cross_entropy(logits.astype(np.float64), labels)
        yield {"logits": logits, "labels": labels, "loss": loss, "dlogits": want,
               "where": f"for logits of shape {logits.shape} ({logits.dtype}) and size about {scale:g}",
               "slips": _softmax_slips(logits, labels, want)}


def _layers(other: bool) -> dict[str, Callable]:
    """The reference pieces, or with `other` valid ones unlike the lab's: batch norm with eps = OTHER_EPS, the loss
    and batch norm's backward pass scaled by OTHER_SCALES."""
    if not other:
        return {"bn_forward": nco.bn_forward, "bn_backward": nco.bn_backward,
                "softmax_cross_entropy": softmax_cross_entropy}

    def scaled(factor: float, layer: Callable, *args) -> tuple:
        return tuple(factor * part for part in layer(*args))

    return {"bn_forward": functools.partial(nco.bn_forward, eps=OTHER_EPS),
            "bn_backward": functools.partial(scaled, OTHER_SCALES[1], nco.bn_backward),
            "softmax_cross_entropy": functools.partial(scaled, OTHER_SCALES[0], softmax_cross_entropy)}


def loss_and_grads_cases(trials: int, seed: int) -> Iterator[dict[str, Any]]:
    """Cases of `cu.bn_softmax.check_loss_and_grads`: random sizes (a batch of one in the second trial), float32 and
    float64; every third trial records other valid layers (`_layers(other=True)`), so that an answer which uses
    pieces of its own instead of `layers` fails. The expected loss and gradients come from torch autograd through
    the whole graph (`replica_grads`), times the other layers' factors."""
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype(nco.DTYPES[trial % 2])
        n = 1 if trial == 1 else int(rng.integers(2, 25))
        f, c = int(rng.integers(2, 6)), int(rng.integers(2, 7))
        X = rng.normal(0, 2, size=(n, f)).astype(dtype)
        y = rng.integers(0, c, size=n)
        params = {"W": rng.normal(size=(f, c)), "gamma": rng.uniform(0.5, 2, size=c) * rng.choice([-1, 1], size=c),
                  "beta": rng.normal(size=c), "running_mean": rng.normal(size=c), "running_var": rng.uniform(0.5, 2, size=c)}
        params = {k: v.astype(dtype) for k, v in params.items()}
        other = trial % 3 == 2
        layers = _layers(other)
        logits = X @ params["W"]
        Z, cache = layers["bn_forward"](logits, params["gamma"], params["beta"])
        loss, dZ = layers["softmax_cross_entropy"](Z, y)
        backward = layers["bn_backward"](dZ, cache)
        eps, (loss_factor, backward_factor) = (OTHER_EPS, OTHER_SCALES) if other else (1e-5, (1.0, 1.0))
        full = {k: loss_factor * backward_factor * v for k, v in replica_grads(X, y, params, eps=eps).items()}
        where = f"for X of shape {X.shape} ({dtype}{', a batch of one' if n == 1 else ''}) and {c} classes"
        if other:
            where += (f", given layers other than the lab's (bn_forward with eps={OTHER_EPS}, the loss and "
                      f"bn_backward multiplied by {OTHER_SCALES[0]:g} and {OTHER_SCALES[1]:g}: use the layers you are given)")
        yield {"params": params, "X": X, "y": y, "where": where,
               "calls": {"bn_forward": [[[logits, params["gamma"], params["beta"]], [Z, cache]]],
                         "softmax_cross_entropy": [[[Z, y], [float(loss), dZ]]],
                         "bn_backward": [[[dZ, cache], list(backward)]]},
               "loss": float(loss), "grads": {k: full[k] for k in bs.PARAMS},
               "slips": {"W": [["dW uses the gradient at the output of batch norm (dZ) instead of at its input "
                                "(dlogits): the chain rule must pass through the batch-norm layer first",
                                X.astype(np.float64).T @ full["Z"] / backward_factor]]}}


def record_grads_cases(trials: int, seed: int) -> Iterator[dict[str, Any]]:
    """Cases of `cu.bn_softmax.check_record_grads`: the replica's inputs, every odd trial with the planted square
    root slip, and every node's gradient by `retain_grad`."""
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        n, f, c = int(rng.integers(3, 13)), int(rng.integers(1, 5)), int(rng.integers(2, 6))
        X, y = rng.normal(0, 2, size=(n, f)), rng.integers(0, c, size=n)
        params = {"W": rng.normal(size=(f, c)), "gamma": rng.uniform(0.5, 2, size=c), "beta": rng.normal(size=c)}
        sqrt_slip = trial % 2 == 1
        yield {"X": X, "y": y, "params": params, "sqrt_slip": sqrt_slip,
               "want": replica_grads(X, y, params, sqrt_slip=sqrt_slip)}


# ---------------------------------------------------------------- the hidden tests' checks

def check_softmax_cross_entropy(softmax_ce: Callable, name: str, trials: int = 6, seed: int = 0) -> None:
    """`cu.bn_softmax.check_softmax_cross_entropy` on `trials` random cases drawn from `seed` and the two fixed ones."""
    bs.check_softmax_cross_entropy(softmax_ce, name, softmax_cases(trials, seed))


def check_loss_and_grads(loss_and_grads: Callable, name: str, trials: int = 6, seed: int = 0) -> None:
    """`cu.bn_softmax.check_loss_and_grads` on `trials` random cases drawn from `seed`."""
    bs.check_loss_and_grads(loss_and_grads, name, loss_and_grads_cases(trials, seed))


def check_record_grads(record_grads: Callable, name: str, trials: int = 2, seed: int = 0) -> None:
    """`cu.bn_softmax.check_record_grads` on `trials` random cases drawn from `seed`."""
    bs.check_record_grads(record_grads, name, record_grads_cases(trials, seed))


def visible_cases() -> dict[str, list[dict[str, Any]]]:
    """The cases the visible checks of bn_from_scratch's classifier exercises store (`cu.bn_cases`), by check."""
    return {"softmax": list(softmax_cases(3, 0)), "loss_and_grads": list(loss_and_grads_cases(3, 0)),
            "record_grads": list(record_grads_cases(2, 0))}
