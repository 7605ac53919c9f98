"""Softmax regression with batch norm on its logits (bn_from_scratch): data, training loop, references, checks.

The model maps inputs X (N, F) to logits X @ W (N, C), batch-normalizes them (gamma, beta) and applies softmax
with the cross-entropy loss. The lab's students write its pieces; this module holds what the lab does not teach:
the four clusters it learns, the minibatch SGD loop, test-mode prediction, a torch replica of the whole graph
(one named tensor per node, for `register_hook`), and the autograder checks of the classifier's exercises with
their private torch references (an answer may not call this package: `norm_checks.OWN_WORK`). The pieces a
model is built from are passed in a dict, `layers`:

    {"bn_forward": ..., "bn_backward": ..., "softmax_cross_entropy": ..., "update_running_stats": ...,
     "bn_forward_test": ...}

so that a test can hand a student's function the reference pieces (`_reference_layers()`) and grade that
function alone. The references use torch, never a NumPy version of what students derive.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .norm_checks import OWN_WORK, _bn_backward, _bn_forward, call_leaving_inputs, check_array
from .testing import check_no_calls, probe

PARAMS = ("W", "gamma", "beta")
REPLICA_NODES = ("W", "gamma", "beta", "logits", "mu", "xc", "var", "std", "x_hat", "Z")  # as torch_replica lists them
OTHER_EPS, OTHER_SCALES = 0.25, (3.0, 2.0)  # the pieces of `_other_layers`: bn_forward's eps, the loss's and backward's factors


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


# ---------------------------------------------------------------- references (torch)

def _softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean cross-entropy, its gradient) by torch in float64, the gradient in the dtype of `logits`."""
    z = torch.tensor(np.asarray(logits, dtype=np.float64), requires_grad=True)
    with torch.enable_grad():
        loss = F.cross_entropy(z, torch.as_tensor(np.asarray(y, dtype=np.int64)))
        loss.backward()
    return float(loss.detach()), z.grad.numpy().astype(logits.dtype)


def _update_running_stats(running_mean: np.ndarray, running_var: np.ndarray, x: np.ndarray,
                          momentum: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """One update of BatchNorm1d's running estimates from a training batch `x` (N >= 2), by torch's batch_norm in
    float64 (it updates the buffers it is given), returned in the dtype of `x`."""
    mean, var = (torch.tensor(np.asarray(v, dtype=np.float64)) for v in (running_mean, running_var))
    F.batch_norm(torch.as_tensor(np.asarray(x, dtype=np.float64)), mean, var, training=True, momentum=momentum)
    return mean.numpy().astype(x.dtype), var.numpy().astype(x.dtype)


def _bn_forward_test(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                     running_var: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Batch norm in test mode by torch's batch_norm in eval mode, in float64, returned in the dtype of `x`."""
    t = {k: torch.as_tensor(np.asarray(v, dtype=np.float64))
         for k, v in dict(x=x, gamma=gamma, beta=beta, mean=running_mean, var=running_var).items()}
    out = F.batch_norm(t["x"], t["mean"], t["var"], t["gamma"], t["beta"], training=False, eps=eps)
    return out.numpy().astype(x.dtype)


def _reference_layers() -> dict[str, Callable]:
    """Every piece of the model by torch, under the names a `layers` dict uses."""
    return {"bn_forward": _bn_forward, "bn_backward": _bn_backward,
            "softmax_cross_entropy": _softmax_cross_entropy,
            "update_running_stats": _update_running_stats, "bn_forward_test": _bn_forward_test}


def _scaled(factor: float, layer: Callable, *args) -> tuple:
    """`layer(*args)` with every part of its result multiplied by `factor`: a valid layer unlike the lab's."""
    return tuple(factor * part for part in layer(*args))


def _other_layers() -> dict[str, Callable]:
    """Reference pieces that differ from the lab's: batch norm with eps = OTHER_EPS, the loss and batch norm's
    backward pass scaled by OTHER_SCALES. A classifier that takes its layers from `layers` gives the loss times
    the loss's factor and gradients times both factors; one that uses pieces of its own does not."""
    return {**_reference_layers(), "bn_forward": functools.partial(_bn_forward, eps=OTHER_EPS),
            "softmax_cross_entropy": functools.partial(_scaled, OTHER_SCALES[0], _softmax_cross_entropy),
            "bn_backward": functools.partial(_scaled, OTHER_SCALES[1], _bn_backward)}


def _loss_and_grads(params: dict, X: np.ndarray, y: np.ndarray, layers: dict | None = None,
                             eps: float = 1e-5) -> tuple[float, dict[str, np.ndarray]]:
    """The classifier's mean loss and the gradients of W, gamma and beta by torch autograd through the whole graph."""
    loss, nodes = torch_replica(X, y, params, eps=eps)
    loss.backward()
    dtype = np.asarray(params["W"]).dtype
    return float(loss.detach()), {k: nodes[k].grad.numpy().astype(dtype) for k in PARAMS}


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


def _replica_grads(X: np.ndarray, y: np.ndarray, params: dict, sqrt_slip: bool = False,
                   eps: float = 1e-5) -> dict[str, np.ndarray]:
    """The gradient of the loss at every node of `torch_replica`, by `retain_grad` (the tests' oracle)."""
    loss, nodes = torch_replica(X, y, params, eps=eps, sqrt_slip=sqrt_slip)
    for t in nodes.values():
        t.retain_grad()
    loss.backward()
    return {name: t.grad.numpy().copy() for name, t in nodes.items()}


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


# ---------------------------------------------------------------- checks of the exercises

def _scalar(value: Any, name: str, where: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (float, int, np.floating, np.integer)):
        raise AssertionError(f"{name} should be a number (a Python or NumPy float), but it is a "
                             f"{type(value).__name__} {where}.")
    return float(value)


def _softmax_case(rng: np.random.Generator, dtype: np.dtype, scale: float, n: int | None = None):
    n = int(rng.integers(1, 21)) if n is None else n
    c = int(rng.integers(2, 9))
    logits = (scale * rng.normal(size=(n, c)) + rng.normal(0, scale, size=(n, 1))).astype(dtype)
    return logits, rng.integers(0, c, size=n)


def check_softmax_cross_entropy(softmax_ce: Callable, name: str, trials: int = 6, seed: int = 0,
                                scales: tuple = (1.0, 5.0, 1000.0)) -> None:
    """Check `softmax_ce(logits, y) -> (loss, dlogits)` against torch's cross_entropy and its gradient.

    Random sizes (a batch of one included), float32 and float64, logits of every size in `scales` (large ones
    overflow a naive exp); a number and an array of the logits' shape and dtype; logits and y unchanged; no torch.
    On non-finite results it calls the function again on the logits with each row's maximum subtracted (same loss,
    same gradient), and says the exponentials overflow only when that call comes out right. Used by bn_from_scratch.
    """
    check_no_calls(softmax_ce, {**OWN_WORK, "torch": "this exercise is NumPy only: write the softmax yourself",
                                "logsumexp": "subtracting the row maximum is the exercise: write it yourself"}, name)
    rng = np.random.default_rng(seed)
    # After the random trials, two fixed ones where the true class's logit lies far below the row's largest.
    extreme = [(np.array([[1000.0, 0.0, -1000.0], [-500.0, 2000.0, 0.0]], dtype=dtype), np.array([2, 0]))
               for dtype in (np.float64, np.float32)]
    for trial in range(trials + len(extreme)):
        dtype = np.dtype([np.float64, np.float32][trial % 2])
        scale = scales[trial % len(scales)] if trial < trials else 1000.0
        logits, labels = _softmax_case(rng, dtype, scale, n=1 if trial == 1 else None) if trial < trials \
            else extreme[trial - trials]
        dtype = logits.dtype
        where = f"for logits of shape {logits.shape} ({dtype}) and size about {scale:g}"
        result = call_leaving_inputs(softmax_ce, name, logits, labels, hint="work on new arrays")
        if not (isinstance(result, tuple) and len(result) == 2):
            raise AssertionError(f"{name} should return a tuple (loss, dlogits), but it returned a "
                                 f"{type(result).__name__} {where}.")
        loss, dlogits = result
        loss = _scalar(loss, f"{name}'s loss", where)
        want_loss, want = _softmax_cross_entropy(logits.astype(np.float64), labels)
        finite = np.isfinite(loss) and isinstance(dlogits, np.ndarray) and np.all(np.isfinite(dlogits))
        if not finite:
            raise AssertionError(_diagnose_non_finite(softmax_ce, logits, labels, want_loss, want, where, name))
        check_array(dlogits, want, dtype, f"{name}'s dlogits", where, _softmax_slips(logits, labels, want))
        tol = 1e-9 if dtype == np.float64 else 1e-5
        if abs(loss - want_loss) > tol * (abs(want_loss) + 1):
            cause = next((why for why, wrong in (
                ("it sums the loss over the batch; the loss is the mean over the batch",
                 want_loss * len(labels)),) if abs(wrong - want_loss) > tol * (abs(want_loss) + 1)
                and abs(loss - wrong) <= tol * (abs(wrong) + 1)), None)
            raise AssertionError(f"{name}'s loss is {loss:.8g} {where}; torch's cross_entropy gives {want_loss:.8g}."
                                 + (f" Likely cause: {cause}." if cause else ""))


def _softmax_slips(logits: np.ndarray, labels: np.ndarray, want: np.ndarray) -> list[tuple[str, np.ndarray]]:
    z = torch.from_numpy(logits.astype(np.float64))
    onehot = F.one_hot(torch.from_numpy(np.asarray(labels, dtype=np.int64)), z.shape[1]).to(torch.float64)
    over_batch = ((torch.softmax(z, dim=0) - onehot) / len(labels)).numpy()
    return [("it returns the gradient of the summed loss: the loss is a mean, so dlogits carries a factor 1/N",
             want * len(labels)),
            ("it takes the softmax over the batch (axis=0); each row is one example's distribution over classes",
             over_batch),
            ("the sign is flipped: the gradient is (softmax - onehot) / N", -want)]


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


def check_loss_and_grads(loss_and_grads: Callable, name: str, trials: int = 6, seed: int = 0) -> None:
    """Check `loss_and_grads(params, X, y, layers) -> (loss, grads)` of the whole classifier against torch autograd.

    The function gets the reference pieces (`_reference_layers()`), so only its own step is graded: the chain rule
    through the logits X @ W and the composition of the layers. Every third trial hands it other valid pieces
    (`_other_layers()`), so that one which uses pieces of its own instead of `layers` fails. Random sizes (a batch
    of one included), float32 and float64; a number and a dict of arrays of the parameters' shapes and dtypes;
    params, X and y unchanged. Used by bn_from_scratch.
    """
    check_no_calls(loss_and_grads, OWN_WORK, name)
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype([np.float64, np.float32][trial % 2])
        n = 1 if trial == 1 else int(rng.integers(2, 25))
        f, c = int(rng.integers(2, 6)), int(rng.integers(2, 7))
        X = rng.normal(0, 2, size=(n, f)).astype(dtype)
        y = rng.integers(0, c, size=n)
        params = {"W": rng.normal(size=(f, c)), "gamma": rng.uniform(0.5, 2, size=c) * rng.choice([-1, 1], size=c),
                  "beta": rng.normal(size=c), "running_mean": rng.normal(size=c), "running_var": rng.uniform(0.5, 2, size=c)}
        params = {k: v.astype(dtype) for k, v in params.items()}
        other = trial % 3 == 2
        where = f"for X of shape {X.shape} ({dtype}{', a batch of one' if n == 1 else ''}) and {c} classes"
        if other:
            where += (f", given layers other than the lab's (bn_forward with eps={OTHER_EPS}, the loss and "
                      f"bn_backward multiplied by {OTHER_SCALES[0]:g} and {OTHER_SCALES[1]:g}: use the layers you are given)")
        result = call_leaving_inputs(loss_and_grads, name, params, X, y, _other_layers() if other else _reference_layers(),
                                     hint="work on new arrays")
        if not (isinstance(result, tuple) and len(result) == 2):
            raise AssertionError(f"{name} should return a tuple (loss, grads), but it returned a {type(result).__name__}.")
        loss, grads = result
        loss = _scalar(loss, f"{name}'s loss", where)
        eps, (loss_factor, backward_factor) = (OTHER_EPS, OTHER_SCALES) if other else (1e-5, (1.0, 1.0))
        want_loss = loss_factor * _loss_and_grads(params, X.astype(np.float64), y, eps=eps)[0]
        full = {k: loss_factor * backward_factor * v for k, v in _replica_grads(X, y, params, eps=eps).items()}
        if not isinstance(grads, dict) or any(k not in grads for k in PARAMS):
            raise AssertionError(f"{name}'s grads should be a dict with the keys 'W', 'gamma' and 'beta', but it is "
                                 f"{type(grads).__name__}{' with keys ' + repr(sorted(grads)) if isinstance(grads, dict) else ''}.")
        tol = 1e-9 if dtype == np.float64 else 1e-5
        if abs(loss - want_loss) > tol * (abs(want_loss) + 1):
            raise AssertionError(f"{name}'s loss is {loss:.8g} {where}; the classifier's loss is {want_loss:.8g}. "
                                 "The loss is softmax_cross_entropy of the batch-normalized logits.")
        slips = {"W": [("dW uses the gradient at the output of batch norm (dZ) instead of at its input (dlogits): the "
                        "chain rule must pass through the batch-norm layer first", X.astype(np.float64).T @ full["Z"] / backward_factor)]}
        for key in PARAMS:
            check_array(grads[key], full[key], dtype, f"{name}'s gradient of {key}", where, slips.get(key, []))


@functools.lru_cache(maxsize=4)
def _reference_run(num_epochs: int) -> tuple[dict, tuple]:
    """Training on `make_clusters` with torch autograd's gradients (deterministic, so computed once per process)."""
    X, y = make_clusters()
    params, history = train(X, y, _loss_and_grads, _reference_layers(), num_epochs, progress=False)
    return params, tuple(history)


def check_training(loss_and_grads: Callable, name: str, num_epochs: int = 10) -> None:
    """Train on `make_clusters` with `loss_and_grads` (and the reference pieces), and compare with the same run on
    torch autograd's gradients, from the same start in the same order: the parameters must end equal, and so must
    the training accuracy in test mode (the four clusters separated after 10 epochs). Used by bn_from_scratch."""
    X, y = make_clusters()
    mine, history = train(X, y, loss_and_grads, _reference_layers(), num_epochs, progress=False)
    want, want_history = _reference_run(num_epochs)
    for key in PARAMS:
        err = float(np.linalg.norm(mine[key] - want[key]) / (np.linalg.norm(want[key]) + 1e-12))
        assert err < 1e-6, (f"After {num_epochs} epochs of SGD with your {name}, {key} differs from the same training "
                            f"run with torch's gradients (relative difference {err:.1e}); the gradients go wrong somewhere "
                            "along the way.")
    accuracy, want_accuracy = history[-1][1], want_history[-1][1]
    assert accuracy == want_accuracy, (
        f"Training with your {name} reaches {accuracy:.1%} training accuracy in test mode after {num_epochs} epochs; "
        f"the same run with torch's gradients reaches {want_accuracy:.1%}.")


def check_record_grads(record_grads: Callable, name: str, trials: int = 2, seed: int = 0) -> None:
    """Check `record_grads(nodes) -> dict`: after the loss's backward pass, the dict maps every node of
    `torch_replica` to its gradient (torch's `retain_grad` agrees), and the hooks leave the gradients that reach
    W, gamma and beta unchanged. Runs the replica in the student's kernel (`hooked_replica`). Used by bn_from_scratch.
    """
    check_no_calls(record_grads, OWN_WORK, name)
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        n, f, c = int(rng.integers(3, 13)), int(rng.integers(1, 5)), int(rng.integers(2, 6))
        X, y = rng.normal(0, 2, size=(n, f)), rng.integers(0, c, size=n)
        params = {"W": rng.normal(size=(f, c)), "gamma": rng.uniform(0.5, 2, size=c), "beta": rng.normal(size=c)}
        sqrt_slip = trial % 2 == 1
        want = _replica_grads(X, y, params, sqrt_slip=sqrt_slip)
        report = hooked_replica(record_grads, X, y, params, sqrt_slip=sqrt_slip)
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

