"""Softmax regression with batch norm on its logits (bn_from_scratch): data, training loop, torch replica, checks.

The model maps inputs X (N, F) to logits X @ W (N, C), batch-normalizes them (gamma, beta) and applies softmax
with the cross-entropy loss. The lab's students write its pieces; this module holds what the lab does not teach:
the four clusters it learns, the minibatch SGD loop, test-mode prediction, a torch replica of the whole graph
(one named tensor per node, for `register_hook`), and the autograder checks of the classifier's exercises. The
pieces a model is built from are passed in a dict, `layers`:

    {"bn_forward": ..., "bn_backward": ..., "softmax_cross_entropy": ..., "update_running_stats": ...,
     "bn_forward_test": ...}

The checks run an answer on cases that carry their expected results: by default the fixed cases stored with the
course (`bn_cases`), in the hidden tests random ones from the instructor's oracles. The layers a classifier is
handed are `Replay`s of the reference pieces' recorded results, so no reference ships with the course.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import bn_cases
from .norm_checks import OWN_WORK, TOL, _error, call_leaving_inputs, check_array
from .testing import check_no_calls, probe

PARAMS = ("W", "gamma", "beta")
REPLICA_NODES = ("W", "gamma", "beta", "logits", "mu", "xc", "var", "std", "x_hat", "Z")  # as torch_replica lists them


# ---------------------------------------------------------------- data and parameters

def make_clusters(n_per_class: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four clusters in the plane, one per class: points spread uniformly over disks of radius 1.4 centred on a
    circle of radius 2.5 around (4, 2). Neighbouring disks are 0.7 apart, so a linear classifier separates them.

    Returns X (4 n_per_class, 2) float64 and y (4 n_per_class,) int64. Used by bn_from_scratch.
    """
    rng = np.random.default_rng(seed)
    angles = np.pi / 4 + np.pi / 2 * np.arange(4)
    centres = 2.5 * np.column_stack([np.cos(angles), np.sin(angles)]) + np.array([4.0, 2.0])
    y = np.repeat(np.arange(4), n_per_class)
    radius, angle = 1.4 * np.sqrt(rng.uniform(size=len(y))), rng.uniform(0, 2 * np.pi, size=len(y))
    X = centres[y] + radius[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    return X, y


def init_params(num_features: int, num_classes: int, seed: int = 0, dtype: Any = np.float64) -> dict[str, np.ndarray]:
    """W ~ 0.1 N(0, 1), gamma = 1, beta = 0, running mean 0 and running variance 1 (torch's BatchNorm1d start)."""
    rng = np.random.default_rng(seed)
    params = {"W": 0.1 * rng.standard_normal((num_features, num_classes)), "gamma": np.ones(num_classes),
              "beta": np.zeros(num_classes), "running_mean": np.zeros(num_classes), "running_var": np.ones(num_classes)}
    return {k: v.astype(dtype) for k, v in params.items()}


# ---------------------------------------------------------------- training and prediction

def predict(params: dict, X: np.ndarray, bn_forward_test: Callable) -> np.ndarray:
    """Class labels (N,) in test mode: logits X @ W, batch norm with the running estimates, largest entry."""
    Z = bn_forward_test(X @ params["W"], params["gamma"], params["beta"], params["running_mean"], params["running_var"])
    return np.asarray(Z).argmax(axis=1)


def train(X: np.ndarray, y: np.ndarray, loss_and_grads: Callable, layers: dict, num_epochs: int,
          batch_size: int = 32, lr: float = 0.5, momentum: float = 0.1, seed: int = 0,
          progress: bool = True) -> tuple[dict, list[tuple[float, float]]]:
    """Minibatch SGD on the classifier with the gradients of `loss_and_grads(params, X, y, layers)`.

    Each batch's logits also update the running estimates (`layers["update_running_stats"]`); a batch of one is
    skipped (its variance is undefined). After every epoch the mean training loss and the training accuracy in
    test mode (`predict` with `layers["bn_forward_test"]`) go into the history.

    Returns (params, history): the trained parameters and [(mean loss, accuracy), ...] per epoch.
    Used by bn_from_scratch.
    """
    rng = np.random.default_rng(seed)
    params = init_params(X.shape[1], int(y.max()) + 1, seed=seed, dtype=X.dtype)
    history = []
    for _ in tqdm(range(num_epochs), desc="epochs", disable=not progress):
        order, losses = rng.permutation(len(X)), []
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                continue
            logits = X[idx] @ params["W"]
            loss, grads = loss_and_grads(params, X[idx], y[idx], dict(layers))
            for key in PARAMS:
                params[key] = params[key] - lr * np.asarray(grads[key])
            params["running_mean"], params["running_var"] = layers["update_running_stats"](
                params["running_mean"], params["running_var"], logits, momentum)
            losses.append(float(loss))
        history.append((float(np.mean(losses)), float((predict(params, X, layers["bn_forward_test"]) == y).mean())))
    return params, history


def plot_history(history: list[tuple[float, float]]):
    """Two panels of a `train` history against the epoch: the mean training loss (log scale) and the training
    accuracy in test mode. Returns (fig, axes). Used by bn_from_scratch."""
    import matplotlib.pyplot as plt

    from .plots import line_plot

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = np.arange(1, len(history) + 1)
    line_plot({"mean training loss": [h[0] for h in history]}, "epoch", "loss", x=epochs, logy=True, ax=axes[0])
    line_plot({"training accuracy (test mode)": [h[1] for h in history]}, "epoch", "accuracy", x=epochs, ax=axes[1])
    axes[1].set_ylim(0, 1.02)
    fig.tight_layout()
    return fig, axes


# ---------------------------------------------------------------- the torch replica, for hooks

class _SqrtWithSlip(torch.autograd.Function):
    """sqrt whose backward pass forgets the 1/2 of the derivative: a planted bug for the per-node check."""

    @staticmethod
    def forward(ctx, v):
        s = torch.sqrt(v)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad / s  # d sqrt(v) / dv is 1 / (2 sqrt(v))


def torch_replica(X: np.ndarray, y: np.ndarray, params: dict, eps: float = 1e-5,
                  sqrt_slip: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The classifier's graph in torch float64, node by node as the lab draws it: returns (loss, nodes).

    nodes maps "W", "gamma", "beta" (leaves) and "logits", "mu", "xc", "var", "std", "x_hat", "Z" to their
    tensors, so that a hook can be registered on each. With `sqrt_slip` the square root's backward pass returns
    twice its true derivative. Used by bn_from_scratch.
    """
    W, gamma, beta = (torch.tensor(np.asarray(params[k], dtype=np.float64), requires_grad=True) for k in PARAMS)
    with torch.enable_grad():
        logits = torch.as_tensor(np.asarray(X, dtype=np.float64)) @ W  # (N, C)
        mu = logits.mean(dim=0)  # (C,)
        xc = logits - mu
        var = (xc * xc).mean(dim=0)
        std = (_SqrtWithSlip.apply if sqrt_slip else torch.sqrt)(var + eps)
        x_hat = xc / std
        Z = gamma * x_hat + beta
        loss = F.cross_entropy(Z, torch.as_tensor(np.asarray(y, dtype=np.int64)))
    return loss, {"W": W, "gamma": gamma, "beta": beta, "logits": logits, "mu": mu, "xc": xc, "var": var,
                  "std": std, "x_hat": x_hat, "Z": Z}


@probe
def hooked_replica(record_grads: Callable, X: np.ndarray, y: np.ndarray, params: dict,
                   sqrt_slip: bool = False) -> dict:
    """Build `torch_replica`, call `record_grads(nodes)`, back-propagate the loss, and report what it recorded.

    Runs in the student's kernel when graded. Returns {"recorded": what record_grads returned, as it stands after
    the backward pass, "leaf_grads": the .grad of W, gamma and beta}. Used by bn_from_scratch.
    """
    loss, nodes = torch_replica(X, y, params, sqrt_slip=sqrt_slip)
    recorded = record_grads(dict(nodes))
    loss.backward()
    return {"recorded": recorded, "leaf_grads": {k: nodes[k].grad for k in PARAMS}}


# ---------------------------------------------------------------- recorded layers

def _same(got: Any, recorded: Any) -> bool:
    """Whether an argument a layer is called with is the recorded one: arrays of its shape within the checks'
    tolerance (TOL of the recorded dtype), dicts holding every recorded key, numbers close, the rest equal."""
    if isinstance(recorded, np.ndarray):
        if not isinstance(got, np.ndarray) or got.shape != recorded.shape:
            return False
        if recorded.dtype.kind not in "fc":
            return bool(np.array_equal(got, recorded))
        return bool(np.all(np.isfinite(got))) and _error(got.astype(np.float64), recorded.astype(np.float64)) < \
            TOL.get(recorded.dtype, TOL[np.dtype(np.float64)])
    if isinstance(recorded, dict):
        return isinstance(got, dict) and all(k in got and _same(got[k], v) for k, v in recorded.items())
    if isinstance(recorded, float):
        return isinstance(got, (int, float, np.number)) and abs(float(got) - recorded) <= 1e-12 * (abs(recorded) + 1)
    return bool(got == recorded)


class Replay:
    """A layer for a test: for a call whose leading arguments are those of a recorded call (within float
    rounding) it returns a copy of that call's recorded result (a tuple), and fails for any other call.

    The classifier's checks hand a student's function the reference pieces this way, recorded by the
    instructor's oracles, so that no reference layer ships with the course. Picklable, so it crosses into a
    grading kernel as the layers do.
    """

    def __init__(self, name: str, calls: list) -> None:
        self.name, self.calls = name, [(list(args), list(result)) for args, result in calls]

    def __call__(self, *args, **kwargs):
        for recorded, result in self.calls:
            if len(args) >= len(recorded) and all(_same(a, r) for a, r in zip(args, recorded)):
                return tuple(copy.deepcopy(result))
        recorded = self.calls[0][0]
        if len(args) < len(recorded):
            why = f"{len(args)} positional argument(s); it takes {len(recorded)}"
        else:
            at = next(i for i, (a, r) in enumerate(zip(args, recorded)) if not _same(a, r))
            why = (f"an argument {at + 1} ({type(args[at]).__name__}"
                   f"{' of shape ' + str(tuple(args[at].shape)) if hasattr(args[at], 'shape') else ''}) that is not "
                   "what this step of the classifier passes it")
        raise AssertionError(f"layers[{self.name!r}] was called with {why}. Check what you feed each layer.")


# ---------------------------------------------------------------- checks of the exercises

def _scalar(value: Any, name: str, where: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (float, int, np.floating, np.integer)):
        raise AssertionError(f"{name} should be a number (a Python or NumPy float), but it is a "
                             f"{type(value).__name__} {where}.")
    return float(value)


def check_softmax_cross_entropy(softmax_ce: Callable, name: str, cases: Iterable[dict] | None = None) -> None:
    """Check `softmax_ce(logits, y) -> (loss, dlogits)` against torch's cross_entropy and its gradient on `cases`
    (default: the stored ones): random sizes (a batch of one included), float32 and float64, logits small and
    huge (which overflow a naive exp); a number and an array of the logits' shape and dtype; logits and y
    unchanged; no torch. On non-finite results it calls the function again on the logits with each row's maximum
    subtracted (same loss, same gradient), and says the exponentials overflow only when that call comes out
    right. Used by bn_from_scratch.
    """
    check_no_calls(softmax_ce, {**OWN_WORK, "torch": "this exercise is NumPy only: write the softmax yourself",
                                "logsumexp": "subtracting the row maximum is the exercise: write it yourself"}, name)
    for case in bn_cases.load("softmax") if cases is None else cases:
        logits, labels, want_loss, want, where = (case[k] for k in ("logits", "labels", "loss", "dlogits", "where"))
        dtype = logits.dtype
        result = call_leaving_inputs(softmax_ce, name, logits, labels, hint="work on new arrays")
        if not (isinstance(result, tuple) and len(result) == 2):
            raise AssertionError(f"{name} should return a tuple (loss, dlogits), but it returned a "
                                 f"{type(result).__name__} {where}.")
        loss, dlogits = result
        loss = _scalar(loss, f"{name}'s loss", where)
        finite = np.isfinite(loss) and isinstance(dlogits, np.ndarray) and np.all(np.isfinite(dlogits))
        if not finite:
            raise AssertionError(_diagnose_non_finite(softmax_ce, logits, labels, want_loss, want, where, name))
        check_array(dlogits, want.astype(np.float64), dtype, f"{name}'s dlogits", where, case["slips"])
        tol = 1e-9 if dtype == np.float64 else 1e-5
        if abs(loss - want_loss) > tol * (abs(want_loss) + 1):
            summed = want_loss * len(labels)
            cause = ("it sums the loss over the batch; the loss is the mean over the batch"
                     if abs(summed - want_loss) > tol * (abs(want_loss) + 1) and abs(loss - summed) <= tol * (abs(summed) + 1)
                     else None)
            raise AssertionError(f"{name}'s loss is {loss:.8g} {where}; torch's cross_entropy gives {want_loss:.8g}."
                                 + (f" Likely cause: {cause}." if cause else ""))


def _diagnose_non_finite(softmax_ce: Callable, logits: np.ndarray, labels: np.ndarray, want_loss: float,
                         want: np.ndarray, where: str, name: str) -> str:
    facts = f"{name} returns a loss or a dlogits with NaN or infinite values {where} (torch's loss is {want_loss:.6g})."
    shifted = logits - logits.max(axis=1, keepdims=True)
    again = softmax_ce(shifted.copy(), labels.copy())
    ok = (isinstance(again, tuple) and len(again) == 2 and isinstance(again[1], np.ndarray)
          and np.all(np.isfinite(again[1])) and again[1].shape == want.shape
          and isinstance(again[0], (float, np.floating)) and abs(float(again[0]) - want_loss) <= 1e-4 * (abs(want_loss) + 1)
          and np.abs(again[1].astype(np.float64) - want).max() <= 1e-4)
    if ok:
        return (f"{facts} On the same logits with each row's maximum subtracted first (which changes neither the loss "
                "nor the gradient) it returns the right values, so the exponentials overflow on large logits. Subtract "
                "each row's own maximum, logits.max(axis=1, keepdims=True), before exponentiating.")
    if isinstance(again, tuple) and len(again) == 2 and isinstance(again[1], np.ndarray) \
            and again[1].shape == want.shape and np.all(np.isfinite(again[1])) \
            and np.abs(again[1].astype(np.float64) - want).max() <= 1e-4:
        p = torch.softmax(torch.from_numpy(shifted.astype(logits.dtype)), dim=1)  # in the logits' own precision
        via_log_p = float(-torch.log(p[torch.arange(len(labels)), torch.as_tensor(labels)]).mean())
        if not np.isfinite(via_log_p) and not np.isfinite(float(again[0])):
            return (f"{facts} The gradient is right, and the loss is infinite even on logits whose row maxima are "
                    "already subtracted: the loss takes the log of a probability that underflows to 0 (the largest "
                    "logit exceeds the true class's by more than exp can represent). Compute the log-softmax directly, "
                    "shifted - log(sum(exp(shifted))), and read the loss from it.")
    return facts


def check_loss_and_grads(loss_and_grads: Callable, name: str, cases: Iterable[dict] | None = None) -> None:
    """Check `loss_and_grads(params, X, y, layers) -> (loss, grads)` of the whole classifier against torch autograd
    on `cases` (default: the stored ones).

    The function gets the reference pieces (as `Replay`s of their recorded results), so only its own step is
    graded: the chain rule through the logits X @ W and the composition of the layers. Some cases hand it other
    valid pieces, so that one which uses pieces of its own instead of `layers` fails. Random sizes (a batch of one
    included), float32 and float64; a number and a dict of arrays of the parameters' shapes and dtypes; params, X
    and y unchanged. Used by bn_from_scratch.
    """
    check_no_calls(loss_and_grads, OWN_WORK, name)
    for case in bn_cases.load("loss_and_grads") if cases is None else cases:
        params, X, y, where = (case[k] for k in ("params", "X", "y", "where"))
        layers = {key: Replay(key, calls) for key, calls in case["calls"].items()}
        result = call_leaving_inputs(loss_and_grads, name, params, X, y, layers, hint="work on new arrays")
        if not (isinstance(result, tuple) and len(result) == 2):
            raise AssertionError(f"{name} should return a tuple (loss, grads), but it returned a {type(result).__name__}.")
        loss, grads = result
        loss = _scalar(loss, f"{name}'s loss", where)
        if not isinstance(grads, dict) or any(k not in grads for k in PARAMS):
            raise AssertionError(f"{name}'s grads should be a dict with the keys 'W', 'gamma' and 'beta', but it is "
                                 f"{type(grads).__name__}{' with keys ' + repr(sorted(grads)) if isinstance(grads, dict) else ''}.")
        want_loss, tol = case["loss"], 1e-9 if X.dtype == np.float64 else 1e-5
        if abs(loss - want_loss) > tol * (abs(want_loss) + 1):
            raise AssertionError(f"{name}'s loss is {loss:.8g} {where}; the classifier's loss is {want_loss:.8g}. "
                                 "The loss is softmax_cross_entropy of the batch-normalized logits.")
        for key in PARAMS:
            check_array(grads[key], case["grads"][key], X.dtype, f"{name}'s gradient of {key}", where,
                        case["slips"].get(key, []))


def check_record_grads(record_grads: Callable, name: str, cases: Iterable[dict] | None = None) -> None:
    """Check `record_grads(nodes) -> dict` on `cases` (default: the stored ones): after the loss's backward pass,
    the dict maps every node of `torch_replica` to its gradient (torch's `retain_grad` agrees), and the hooks leave
    the gradients that reach W, gamma and beta unchanged. Runs the replica in the student's kernel
    (`hooked_replica`). Used by bn_from_scratch.
    """
    check_no_calls(record_grads, OWN_WORK, name)
    for case in bn_cases.load("record_grads") if cases is None else cases:
        want = case["want"]
        report = hooked_replica(record_grads, case["X"], case["y"], case["params"], sqrt_slip=case["sqrt_slip"])
        recorded = report["recorded"]
        if not isinstance(recorded, dict):
            raise AssertionError(f"{name} should return a dict (filled by the hooks during the backward pass), but it "
                                 f"returned a {type(recorded).__name__}.")
        names = list(REPLICA_NODES)
        missing = [k for k in names if k not in recorded]
        if missing:
            last = REPLICA_NODES[-1]
            if set(recorded) == {last}:
                raise AssertionError(
                    f"After the backward pass {name}'s dict holds one entry, {last!r}, the last name of the loop, "
                    "instead of one per node: every hook stores under the value the loop variable has when the hook "
                    "runs, which is its last value by then. Bind the name when you create the hook, for example as a "
                    "default argument: lambda grad, name=name: ...")
            raise AssertionError(f"After the backward pass {name}'s dict lacks the gradient of "
                                 f"{', '.join(map(repr, missing))}; it should hold one for every node it was given.")
        for key in PARAMS:
            leaf = report["leaf_grads"][key]
            if leaf is None or not np.allclose(leaf.numpy(), want[key], rtol=1e-8, atol=1e-12):
                raise AssertionError(f"With {name}'s hooks in place, the gradient reaching {key} changes: a hook that "
                                     "returns a tensor replaces the gradient, so a recording hook must return None.")
        for key in names:
            got = recorded[key]
            if isinstance(got, torch.Tensor):
                got = got.detach().numpy()
            if not isinstance(got, np.ndarray) or got.shape != want[key].shape:
                raise AssertionError(f"{name}'s entry for {key!r} should be the gradient of that tensor (shape "
                                     f"{want[key].shape}), but it is {type(got).__name__}"
                                     f"{' of shape ' + str(got.shape) if hasattr(got, 'shape') else ''}.")
            wrong_node = next((k for k in names if k != key and want[k].shape == got.shape
                               and np.allclose(got, want[k], rtol=1e-10, atol=1e-14)), None)
            if not np.allclose(got, want[key], rtol=1e-8, atol=1e-12):
                raise AssertionError(f"{name}'s entry for {key!r} is not the gradient of {key}"
                                     + (f"; it equals the gradient of {wrong_node!r}" if wrong_node else "") + ".")

