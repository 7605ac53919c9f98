"""References of bn_from_scratch's normalization exercises, and the random cases its hidden tests grade them on.

The references are torch in float64: batch norm (statistics over axis 0) and layer norm (axis 1), node by node
and as torch's fused layer, with autograd's gradients; BatchNorm1d for the running estimates and test mode. Each
`*_cases` generator draws cases (`draw_case`) and attaches the expected results and the results of
typical slips, recomputed on that case; `cu.norm_checks.check_*` compares an answer with them. The hidden tests
call the `check_*` functions here with a fresh seed; the visible checks use stored cases made by the same
generators (`course_oracles.bn_cases`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from course_utils import norm_checks as nc

DTYPES = (np.float64, np.float32)


# ---------------------------------------------------------------- references (torch, float64)

def norm_graph(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dout: np.ndarray | None = None,
               axis: int = 0, eps: float = 1e-5) -> dict[str, Any]:
    """The forward graph of batch norm (`axis=0`) or layer norm (`axis=1`) in torch float64, node by node.

    Returns the output "out", every node of `CACHE_KEYS` as float64 arrays and, given an upstream gradient
    `dout`, the gradient of every node of `NODES` under the key "d<node>" (torch autograd, with `retain_grad`).
    "out", "dx", "dgamma" and "dbeta" come from torch's own layer (`fused`), the nodes from a graph of them.
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
    ref.update(fused(x, gamma, beta, dout, axis, eps))
    return ref


def torch_norm(x: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None, axis: int,
               eps: float) -> torch.Tensor:
    """torch's own layer: batch norm in training mode (`axis=0`, a batch of one allowed) or layer norm (`axis=1`)."""
    if axis == 0:  # the ATen op, since F.batch_norm refuses a batch of one in training mode
        return torch.batch_norm(x, gamma, beta, None, None, True, 0.0, eps, False)
    return F.layer_norm(x, (x.shape[1],), gamma, beta, eps)


def fused(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dout: np.ndarray | None, axis: int,
          eps: float) -> dict[str, np.ndarray]:
    """"out" and, given `dout`, "dx", "dgamma", "dbeta" from torch's fused layer and autograd, in float64."""
    xt, gt, bt = (torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in (x, gamma, beta))
    with torch.enable_grad():
        out = torch_norm(xt, gt, bt, axis, eps)
        if dout is not None:
            out.backward(torch.as_tensor(np.asarray(dout, dtype=np.float64)))
    ref = {"out": out.detach().numpy().copy()}
    if dout is not None:
        ref.update(dx=xt.grad.numpy().copy(), dgamma=gt.grad.numpy().copy(), dbeta=bt.grad.numpy().copy())
    return ref


def reference_cache(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5, axis: int = 0) -> dict:
    """The cache a correct forward pass returns (`CACHE_KEYS`), in the dtype of `x`."""
    ref = norm_graph(x, gamma, beta, axis=axis, eps=eps)
    cache = {key: ref[key].astype(x.dtype) for key in nc.CACHE_KEYS if key != "eps"}
    cache.update(x=x.copy(), gamma=gamma.copy(), beta=beta.copy(), eps=float(eps))
    return cache


def bn_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, dict]:
    """Batch norm in training mode with bn_from_scratch's contract, by torch: (out, cache) in the dtype of `x`."""
    ref = norm_graph(x, gamma, beta, axis=0, eps=eps)
    return ref["out"].astype(x.dtype), reference_cache(x, gamma, beta, eps, axis=0)


def bn_backward(dout: np.ndarray, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dgamma, dbeta) of batch norm by torch autograd, from a cache of `CACHE_KEYS`, in the dtype of `dout`."""
    ref = norm_graph(cache["x"], cache["gamma"], cache["beta"], dout, axis=0, eps=cache["eps"])
    return tuple(ref[k].astype(dout.dtype) for k in ("dx", "dgamma", "dbeta"))


def _bn_layer(d: int, momentum: float = 0.1, eps: float = 1e-5) -> torch.nn.BatchNorm1d:
    return torch.nn.BatchNorm1d(d, eps=eps, momentum=momentum, dtype=torch.float64)


# ---------------------------------------------------------------- typical slips, recomputed on a case

def _pairs(slips: list[tuple[str, Any]]) -> list[list]:
    """Slips as stored: [why, wrong result as a float64 array]."""
    return [[why, np.asarray(wrong.numpy() if isinstance(wrong, torch.Tensor) else wrong, dtype=np.float64)]
            for why, wrong in slips]


def forward_slips(case: dict[str, Any], axis: int) -> dict[str, list[list]]:
    """Wrong outputs and caches that typical slips produce, recomputed on this case with torch in float64."""
    x, gamma, beta = (torch.from_numpy(np.asarray(case[k], dtype=np.float64)) for k in ("x", "gamma", "beta"))
    eps = case["eps"]
    layer, other = nc.LAYER[axis], 1 - axis
    keep = axis == 1
    n = x.shape[axis]
    words = {
        "axis": f"it takes the statistics {nc.AXIS_WORDS[other]}, but {layer} takes them {nc.AXIS_WORDS[axis]}",
        "ddof": f"it uses the unbiased variance (dividing by n - 1); {layer} divides by n (np.var's default ddof=0)",
        "eps_out": "eps is added to the standard deviation; it belongs inside the square root, sqrt(var + eps)",
        "no_eps": "eps is missing: the standard deviation is sqrt(var + eps)",
        "swap": "gamma and beta are swapped: out = gamma * x_hat + beta",
    }
    out = {"out": [], "var": [], "std": [], "x_hat": [], "mu": [], "xc": []}
    if n > 1 or axis == 1:
        out["out"].append((words["axis"], torch_norm(x, gamma, beta, other, eps)))
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
    out["out"].append((words["swap"], beta * torch_norm(x, None, None, axis, eps) + gamma))
    return {node: _pairs(slips) for node, slips in out.items()}


def node_slips(case: dict[str, Any], ref: dict[str, np.ndarray]) -> dict[str, list[list]]:
    """Wrong node gradients that typical slips of a batch-norm backward pass produce (float64)."""
    n = case["x"].shape[0]
    dxh, std = ref["dx_hat"], ref["std"]
    slips = {
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
    return {node: _pairs(pairs) for node, pairs in slips.items()}


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
        (dx,) = torch.autograd.grad(torch_norm(x, None, None, 1, case["eps"]), x, dout)
    return (gamma * dx).numpy()


def triple_slips(case: dict[str, Any], axis: int, ref: dict[str, np.ndarray]) -> dict[str, list[list]]:
    """Wrong (dx, dgamma, dbeta) that typical slips of a compact backward pass produce (float64)."""
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
        "dx": _pairs(dx),
        "dgamma": _pairs([("it sums dout * x; gamma multiplies x_hat, so dgamma sums dout * x_hat over the batch",
                           (dout * x).sum(axis=0))]),
        "dbeta": _pairs([("it sums the layer's outputs; dbeta is the sum of the upstream gradient dout over the batch",
                          ref["out"].sum(axis=0)),
                         ("it sums the outputs times dout; beta enters with weight 1, so dbeta is the sum of dout itself",
                          (ref["out"] * dout).sum(axis=0))]),
    }


# ---------------------------------------------------------------- cases

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


def forward_cases(trials: int, seed: int, axis: int = 0, dtypes: tuple = DTYPES,
                  batch_of_one: bool = True) -> Iterator[dict[str, Any]]:
    """Cases of `cu.norm_checks.check_forward`: trials alternate between `dtypes`; with `batch_of_one` the second
    has a single row; the first leaves eps to its default."""
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype(dtypes[trial % len(dtypes)])
        n = 1 if batch_of_one and trial == 1 else (int(rng.integers(4, 17)) if dtype == np.float32 else None)
        case = draw_case(rng, axis, dtype, n=n if axis == 0 or n == 1 else None,
                            d=n if axis == 1 and n != 1 else None)
        del case["dout"]
        if trial == 0:
            case["eps"] = 1e-5
        ref = norm_graph(case["x"], case["gamma"], case["beta"], axis=axis, eps=case["eps"])
        yield {**case, "axis": axis, "default_eps": trial == 0, "slips": forward_slips(case, axis),
               "expected": {key: ref[key] for key in ("out", *nc.CACHE_KEYS) if key != "eps"}}


def backward_nodes_cases(trials: int, seed: int, dtypes: tuple = DTYPES,
                         batch_of_one: bool = True) -> Iterator[dict[str, Any]]:
    """Cases of `cu.norm_checks.check_backward_nodes`: a reference cache, dout, every node's gradient, slips."""
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype(dtypes[trial % len(dtypes)])
        n = 1 if batch_of_one and trial == 1 else (int(rng.integers(4, 17)) if dtype == np.float32 else None)
        case = draw_case(rng, 0, dtype, n=n)
        ref = norm_graph(case["x"], case["gamma"], case["beta"], case["dout"], eps=case["eps"])
        yield {**case, "cache": reference_cache(case["x"], case["gamma"], case["beta"], case["eps"]),
               "expected": {f"d{node}": ref[f"d{node}"] for node in nc.NODES}, "slips": node_slips(case, ref)}


def backward_cases(trials: int, seed: int, axis: int = 0, dtypes: tuple = DTYPES,
                   batch_of_one: bool = True) -> Iterator[dict[str, Any]]:
    """Cases of `cu.norm_checks.check_backward`: a reference cache, dout, (dx, dgamma, dbeta), slips."""
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype(dtypes[trial % len(dtypes)])
        small = int(rng.integers(4, 17)) if dtype == np.float32 else None
        n = 1 if batch_of_one and trial == 1 else (small if axis == 0 else None)
        case = draw_case(rng, axis, dtype, n=n, d=small if axis == 1 else None)
        ref = norm_graph(case["x"], case["gamma"], case["beta"], case["dout"], axis=axis, eps=case["eps"])
        yield {**case, "axis": axis, "cache": reference_cache(case["x"], case["gamma"], case["beta"], case["eps"], axis),
               "expected": {key: ref[key] for key in ("dx", "dgamma", "dbeta")},
               "slips": triple_slips(case, axis, ref)}


def running_stats_cases(trials: int, seed: int) -> Iterator[dict[str, Any]]:
    """Steps of `cu.norm_checks.check_running_stats`: per trial a sequence of training batches of different sizes
    (N >= 2), each step starting from torch's BatchNorm1d estimates after the steps before; trial 0 leaves the
    momentum to its default."""
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype(DTYPES[trial % 2])
        d, momentum = int(rng.integers(1, 9)), 0.1 if trial == 0 else float(rng.uniform(0.01, 0.5))
        layer = _bn_layer(d, momentum)
        sizes = [int(rng.integers(2, 17)) for _ in range(int(rng.integers(2, 6)))]
        for step, n in enumerate(sizes):
            x = rng.normal(rng.normal(0, 3, size=d), rng.uniform(0.5, 3, size=d), size=(n, d)).astype(dtype)
            old_mean, old_var = (getattr(layer, k).detach().clone() for k in ("running_mean", "running_var"))
            with torch.no_grad():
                layer.train()(torch.from_numpy(x.astype(np.float64)))
            xd = torch.from_numpy(x.astype(np.float64))
            batch_mean = xd.mean(dim=0)
            biased, unbiased = (torch.var(xd, dim=0, correction=k) for k in (0, 1))
            swapped = "the momentum weights are swapped: the new estimate is (1 - momentum) * old + momentum * batch"
            yield {"running_mean": old_mean.numpy().astype(dtype), "running_var": old_var.numpy().astype(dtype),
                   "x": x, "momentum": momentum, "default_momentum": trial == 0,
                   "where": f"after batch {step + 1} of {len(sizes)} (sizes {sizes}, momentum {momentum:.3g}, D={d}, "
                            f"{dtype}{', momentum left to its default, which should be 0.1' if trial == 0 else ''})",
                   "expected": [layer.running_mean.numpy().copy(), layer.running_var.numpy().copy()],
                   "slips": [_pairs([(swapped, momentum * old_mean + (1 - momentum) * batch_mean)]),
                             _pairs([("it feeds the biased batch variance into the running variance; torch feeds the "
                                      "unbiased one (ddof=1), since it estimates the variance of the data",
                                      (1 - momentum) * old_var + momentum * biased),
                                     (swapped, momentum * old_var + (1 - momentum) * unbiased)])]}


def forward_test_cases(trials: int, seed: int) -> Iterator[dict[str, Any]]:
    """Cases of `cu.norm_checks.check_forward_test`: BatchNorm1d in eval mode on any batch size (a batch of one in
    the second trial), float32 and float64; trial 0 leaves eps to its default."""
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        dtype = np.dtype(DTYPES[trial % 2])
        d, n = int(rng.integers(1, 9)), 1 if trial == 1 else int(rng.integers(2, 17))
        eps = 1e-5 if trial == 0 else float(rng.choice([1e-5, 1e-3]))
        args = {"x": rng.normal(rng.normal(0, 3, size=d), rng.uniform(0.5, 3, size=d), size=(n, d)),
                "gamma": rng.uniform(0.5, 2, size=d) * rng.choice([-1, 1], size=d), "beta": rng.normal(size=d),
                "running_mean": rng.normal(0, 3, size=d), "running_var": rng.uniform(0.3, 5, size=d)}
        args = {k: v.astype(dtype) for k, v in args.items()}
        layer = _bn_layer(d, eps=eps)
        with torch.no_grad():
            for attr, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "running_mean"),
                              ("running_var", "running_var")):
                getattr(layer, attr).copy_(torch.from_numpy(args[key].astype(np.float64)))
            want = layer.eval()(torch.from_numpy(args["x"].astype(np.float64))).numpy()
        a = {k: torch.from_numpy(v.astype(np.float64)) for k, v in args.items()}
        yield {"args": args, "eps": eps, "default_eps": trial == 0, "expected": want,
               "where": f"for x of shape {(n, d)} ({dtype}{', a batch of one' if n == 1 else ''}), eps={eps:g}"
                        + (" (eps left to its default, which should be 1e-5)" if trial == 0 else ""),
               "slips": _pairs([("it normalizes with the statistics of the batch it is given; in test mode batch norm "
                                 "uses the running estimates, so a prediction does not depend on the rest of the batch",
                                 torch_norm(a["x"], a["gamma"], a["beta"], 0, eps)),
                                ("it divides by the running variance; divide by the running standard deviation, "
                                 "sqrt(running_var + eps)",
                                 a["gamma"] * (a["x"] - a["running_mean"]) / (a["running_var"] + eps) + a["beta"])])}


# ---------------------------------------------------------------- the hidden tests' checks

def check_forward(forward: Callable, name: str, axis: int = 0, trials: int = 5, seed: int = 0,
                  dtypes: tuple = DTYPES, batch_of_one: bool = True) -> None:
    """`cu.norm_checks.check_forward` on `trials` random cases drawn from `seed`."""
    nc.check_forward(forward, name, axis, forward_cases(trials, seed, axis, dtypes, batch_of_one))


def check_backward_nodes(backward_nodes: Callable, name: str, trials: int = 5, seed: int = 0,
                         dtypes: tuple = DTYPES, batch_of_one: bool = True) -> None:
    """`cu.norm_checks.check_backward_nodes` on `trials` random cases drawn from `seed`."""
    nc.check_backward_nodes(backward_nodes, name, backward_nodes_cases(trials, seed, dtypes, batch_of_one))


def check_backward(backward: Callable, name: str, axis: int = 0, trials: int = 5, seed: int = 0,
                   dtypes: tuple = DTYPES, batch_of_one: bool = True,
                   forbidden: dict[str, str] | None = None) -> None:
    """`cu.norm_checks.check_backward` on `trials` random cases drawn from `seed`."""
    nc.check_backward(backward, name, axis, backward_cases(trials, seed, axis, dtypes, batch_of_one), forbidden)


def check_running_stats(update: Callable, name: str, trials: int = 4, seed: int = 0) -> None:
    """`cu.norm_checks.check_running_stats` on the steps of `trials` random sequences drawn from `seed`."""
    nc.check_running_stats(update, name, running_stats_cases(trials, seed))


def check_forward_test(forward_test: Callable, name: str, trials: int = 4, seed: int = 0) -> None:
    """`cu.norm_checks.check_forward_test` on `trials` random cases drawn from `seed`."""
    nc.check_forward_test(forward_test, name, forward_test_cases(trials, seed))


def visible_cases() -> dict[str, list[dict[str, Any]]]:
    """The cases the visible checks of bn_from_scratch store (`cu.bn_cases`), by check."""
    return {"forward_0": list(forward_cases(4, 0, 0)), "forward_1": list(forward_cases(4, 0, 1)),
            "backward_nodes": list(backward_nodes_cases(4, 0)), "backward_0": list(backward_cases(4, 0, 0)),
            "backward_1": list(backward_cases(4, 0, 1)), "running_stats": list(running_stats_cases(2, 0)),
            "forward_test": list(forward_test_cases(2, 0))}
