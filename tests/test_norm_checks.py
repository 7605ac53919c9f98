"""Tests for course_utils.norm_checks and its oracle course_oracles.norm_checks: the oracle against finite
differences, the checks against correct answers (honest alternatives included) and against typical slips, each
named only when it is the cause, on random cases (the hidden tests') and on the stored ones (the visible tests');
the stored cases against what the oracle computes now."""

import numpy as np
import pytest
import torch

from course_oracles import bn_cases as oracle_cases
from course_oracles import norm_checks as onc
from course_utils import bn_cases
from course_utils import gradcheck as gc
from course_utils import norm_checks as nc
from course_utils.bn_cases_data import DATA


def make_forward(axis=0, ddof=0, norm_axis=None, upcast=False, in_place=False, var_formula="two_pass"):
    """A NumPy normalization layer with bn_from_scratch's cache; the keywords plant slips or honest variants."""
    norm_axis = axis if norm_axis is None else norm_axis
    keep = axis == 1

    def forward(x, gamma, beta, eps=1e-5):
        if upcast:
            x = np.asarray(x, dtype=np.float64)
        mu = x.mean(axis=norm_axis, keepdims=keep or norm_axis != axis)
        if in_place:
            x -= mu
            xc = x
        else:
            xc = x - mu
        if var_formula == "two_pass":
            var = (xc * xc).sum(axis=norm_axis, keepdims=keep or norm_axis != axis) / (x.shape[norm_axis] - ddof)
        else:  # E[x^2] - mu^2, an honest alternative
            var = (x * x).mean(axis=norm_axis, keepdims=keep) - mu * mu
        std = np.sqrt(var + eps)
        x_hat = xc / std
        cache = {"x": x, "gamma": gamma, "beta": beta, "eps": eps, "mu": mu, "xc": xc, "var": var, "std": std,
                 "x_hat": x_hat}
        return gamma * x_hat + beta, cache

    return forward


def nodes_backward(dout, cache, slip=None):
    """Batch norm's backward pass node by node; `slip` plants a typical mistake."""
    gamma, xc, std, x_hat = cache["gamma"], cache["xc"], cache["std"], cache["x_hat"]
    n = dout.shape[0]
    dbeta = dout.sum(0) if slip != "dbeta_from_out" else (gamma * x_hat + cache["beta"]).sum(0)
    dgamma = (dout * x_hat).sum(0)
    dx_hat = gamma * dout
    dstd = -(dx_hat * xc).sum(0) / std**2
    dvar = dstd / (2 * std) if slip != "no_half" else dstd / std
    dxc = dx_hat / std + (dvar * 2 * xc / n if slip != "xc_no_var" else 0)
    dmu = -dxc.sum(0)
    dx = dxc + dmu / n if slip != "direct_only" else dx_hat / std
    return {"beta": dbeta, "gamma": dgamma, "x_hat": dx_hat, "std": dstd, "var": dvar, "xc": dxc, "mu": dmu, "x": dx}


def compact_backward(dout, cache, axis=0, slip=None):
    x_hat, std, gamma = cache["x_hat"], cache["std"], cache["gamma"]
    n = dout.shape[axis]
    g = gamma * dout
    if slip == "gamma_outside":
        dx = gamma * (n * dout - dout.sum(axis, keepdims=True) - x_hat * (dout * x_hat).sum(axis, keepdims=True)) / (n * std)
    elif slip == "no_var":
        dx = (n * g - g.sum(axis, keepdims=True)) / (n * std)
    elif slip == "no_mean":
        dx = (n * g - x_hat * (g * x_hat).sum(axis, keepdims=True)) / (n * std)
    elif slip == "direct_only":
        dx = g / std
    else:
        dx = (n * g - g.sum(axis, keepdims=True) - x_hat * (g * x_hat).sum(axis, keepdims=True)) / (n * std)
    result = (dx, (dout * x_hat).sum(0), dout.sum(0))
    return list(result) if slip == "list" else result


def test_reference_matches_finite_differences():
    rng = np.random.default_rng(0)
    for axis in (0, 1):
        x, gamma, beta, dout = rng.normal(size=(6, 5)), rng.normal(size=5), rng.normal(size=5), rng.normal(size=(6, 5))
        ref = onc.norm_graph(x, gamma, beta, dout, axis=axis, eps=1e-3)
        forward = make_forward(axis)
        np.testing.assert_allclose(ref["out"], forward(x, gamma, beta, 1e-3)[0], rtol=1e-12)
        grads = {
            "dx": gc.numerical_gradient_array(lambda z: forward(z, gamma, beta, 1e-3)[0], x, dout),
            "dgamma": gc.numerical_gradient_array(lambda g: forward(x, g, beta, 1e-3)[0], gamma, dout),
            "dbeta": gc.numerical_gradient_array(lambda b: forward(x, gamma, b, 1e-3)[0], beta, dout),
        }
        for key, num in grads.items():
            assert gc.rel_error(ref[key], num) < 1e-8, (axis, key)


def test_reference_node_gradients_match_a_hand_derivation_and_a_batch_of_one():
    rng = np.random.default_rng(1)
    for n in (1, 2, 7):
        x, gamma, beta, dout = rng.normal(size=(n, 3)), rng.normal(size=3), rng.normal(size=3), rng.normal(size=(n, 3))
        ref = onc.norm_graph(x, gamma, beta, dout)
        mine = nodes_backward(dout, make_forward()(x, gamma, beta)[1])
        for node in nc.NODES:
            np.testing.assert_allclose(ref[f"d{node}"], mine[node], rtol=1e-9, atol=1e-12, err_msg=f"{n} {node}")
    np.testing.assert_allclose(onc.norm_graph(np.ones((1, 2)), np.ones(2), np.arange(2.0))["out"], [[0.0, 1.0]])


def test_reference_cache_keeps_dtype_and_every_node():
    x = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    cache = onc.reference_cache(x, np.ones(3, np.float32), np.zeros(3, np.float32), 1e-3)
    assert set(cache) == set(nc.CACHE_KEYS)
    assert all(cache[k].dtype == np.float32 for k in nc.CACHE_KEYS if k != "eps") and cache["eps"] == 1e-3
    assert cache["mu"].shape == (3,) and onc.reference_cache(x, np.ones(3), np.zeros(3), axis=1)["mu"].shape == (4, 1)


@pytest.mark.parametrize("axis", [0, 1])
def test_correct_layers_pass_in_both_dtypes_and_for_a_batch_of_one(axis):
    onc.check_forward(make_forward(axis), "my_forward", axis=axis, trials=12, seed=3)
    onc.check_backward(lambda d, c: compact_backward(d, c, axis), "my_backward", axis=axis, trials=12, seed=4)
    if axis == 0:
        onc.check_backward_nodes(nodes_backward, "my_nodes", trials=12, seed=5)


def test_honest_alternatives_pass():
    onc.check_forward(make_forward(var_formula="moments"), "moments", trials=30, seed=6)
    onc.check_forward(make_forward(axis=1, var_formula="moments"), "moments", axis=1, trials=30, seed=6)

    def in_float64(x, gamma, beta, eps=1e-5):
        out, cache = make_forward()(x.astype(np.float64), gamma.astype(np.float64), beta.astype(np.float64), eps)
        cast = {k: v.astype(x.dtype) if isinstance(v, np.ndarray) else v for k, v in cache.items()}
        return out.astype(x.dtype), {**cast, "x": x, "gamma": gamma, "beta": beta}

    onc.check_forward(in_float64, "in_float64", trials=10, seed=7)

    def nodes_then_compact_dx(dout, cache):  # the node dict with dx from the closed form
        return {**nodes_backward(dout, cache), "x": compact_backward(dout, cache)[0]}

    onc.check_backward_nodes(nodes_then_compact_dx, "mixed", trials=10, seed=8)


@pytest.mark.parametrize("planted, words", [
    (dict(norm_axis=1), r"over the features \(axis=1\), but batch norm"),
    (dict(ddof=1), "unbiased variance"),
])
def test_forward_slips_are_named(planted, words):
    with pytest.raises(AssertionError, match=rf"my_forward's out is off .*Likely cause: .*{words}"):
        onc.check_forward(make_forward(**planted), "my_forward")


def test_eps_outside_the_root_is_named():
    def eps_outside(x, gamma, beta, eps=1e-5):
        out, cache = make_forward()(x, gamma, beta, eps)
        return gamma * cache["xc"] / (x.std(axis=0) + eps) + beta, cache

    with pytest.raises(AssertionError, match="inside the square root"):
        onc.check_forward(eps_outside, "eps_outside", trials=10)


def _with_out(axis, out_of):
    """A correct layer whose output is replaced by `out_of(x, gamma, beta, eps, cache)`: a slip in the output only."""
    def forward(x, gamma, beta, eps=1e-5):
        out, cache = make_forward(axis)(x, gamma, beta, eps)
        return out_of(x, gamma, beta, eps, cache), cache
    return forward


@pytest.mark.parametrize("axis, forward, words", [
    (1, make_forward(axis=1, norm_axis=0), r"over the batch \(axis=0\), but layer norm"),
    (1, make_forward(axis=1, ddof=1), "unbiased variance"),
    (0, _with_out(0, lambda x, g, b, eps, c: g * c["xc"] / x.std(axis=0) + b), "eps is missing"),
    (1, _with_out(1, lambda x, g, b, eps, c: g * c["xc"] / (x.std(axis=1, keepdims=True) + eps) + b),
     "inside the square root"),
    (0, _with_out(0, lambda x, g, b, eps, c: b * c["x_hat"] + g), "gamma and beta are swapped"),
    (1, _with_out(1, lambda x, g, b, eps, c: b * c["x_hat"] + g), "gamma and beta are swapped"),
])
def test_output_slips_of_both_layers_are_named(axis, forward, words):
    with pytest.raises(AssertionError, match=rf"my_forward's out is off .*Likely cause: .*{words}"):
        onc.check_forward(forward, "my_forward", axis=axis, trials=10)


def test_an_unrelated_wrong_answer_gets_no_made_up_cause():
    def scaled(x, gamma, beta, eps=1e-5):
        out, cache = make_forward()(x, gamma, beta, eps)
        return 1.5 * out, cache

    with pytest.raises(AssertionError, match="Compare that step with your derivation") as err:
        onc.check_forward(scaled, "scaled")
    assert "Likely cause" not in str(err.value)


def test_contract_violations_of_the_forward_pass_are_reported():
    with pytest.raises(AssertionError, match="changed its argument x in place"):
        onc.check_forward(make_forward(in_place=True), "in_place")
    with pytest.raises(AssertionError, match="dtype float64 but should have dtype float32"):
        onc.check_forward(make_forward(upcast=True), "upcast")
    with pytest.raises(AssertionError, match=r"should return a tuple \(out, cache\)"):
        onc.check_forward(lambda x, gamma, beta, eps=1e-5: gamma * x + beta, "no_cache")

    def forgets_var(x, gamma, beta, eps=1e-5):
        out, cache = make_forward()(x, gamma, beta, eps)
        del cache["var"]
        return out, cache

    with pytest.raises(AssertionError, match="lacks the key.*'var'"):
        onc.check_forward(forgets_var, "forgets_var")

    def unbiased_cache(x, gamma, beta, eps=1e-5):
        out, cache = make_forward()(x, gamma, beta, eps)
        return out, {**cache, "var": x.var(axis=0, ddof=1)}

    with pytest.raises(AssertionError, match=r"cache\['var'\] is off .*unbiased"):
        onc.check_forward(unbiased_cache, "unbiased_cache")


def test_a_batch_of_one_is_checked():
    def refuses_one(x, gamma, beta, eps=1e-5):
        if x.shape[0] == 1:
            raise ValueError("a batch of one")
        return make_forward()(x, gamma, beta, eps)

    with pytest.raises(ValueError):
        onc.check_forward(refuses_one, "refuses_one", trials=2)


def torch_forward(x, gamma, beta, eps=1e-5):
    out = torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, training=True, eps=eps)
    return out.numpy(), {}


def test_torch_in_the_source_is_rejected():
    with pytest.raises(AssertionError, match="torch_forward uses torch.*NumPy only"):
        onc.check_forward(torch_forward, "torch_forward")


def autograd_backward(dout, cache):
    x = torch.tensor(cache["x"], requires_grad=True)
    out = torch.from_numpy(cache["gamma"]) * (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + cache["eps"])
    out.backward(torch.from_numpy(dout))
    return x.grad.numpy(), (dout * cache["x_hat"]).sum(0), dout.sum(0)


def test_autograd_in_the_source_is_refused():
    with pytest.raises(AssertionError, match="autograd_backward uses (torch|.*backward)"):
        onc.check_backward(autograd_backward, "autograd_backward")


@pytest.mark.parametrize("slip, node, words", [
    ("dbeta_from_out", "beta", "sums the layer's outputs"),
    ("no_half", "var", "factor 1/2"),
    ("xc_no_var", "xc", "forgets that xc also feeds var"),
    ("direct_only", "x", "forgets the paths through the mean and the variance"),
])
def test_node_slips_are_named_at_the_first_wrong_node(slip, node, words):
    with pytest.raises(AssertionError, match=rf"the gradient of {node} is off .*{words}") as err:
        onc.check_backward_nodes(lambda d, c: nodes_backward(d, c, slip), "my_nodes")
    if node not in ("beta", "gamma", "x_hat"):
        assert f"({nc.FEEDS[node]}) are right" in str(err.value)


@pytest.mark.parametrize("axis, slip, words", [
    (0, "no_var", "forgets the path through the variance"),
    (1, "no_var", "forgets the path through the variance"),
    (0, "no_mean", "forgets the path through the mean"),
    (1, "no_mean", "forgets the path through the mean"),
    (0, "direct_only", "only keeps the direct path"),
    (1, "gamma_outside", "gamma varies along the axis"),
])
def test_compact_slips_are_named(axis, slip, words):
    with pytest.raises(AssertionError, match=rf"my_backward's dx is off .*{words}"):
        onc.check_backward(lambda d, c: compact_backward(d, c, axis, slip), "my_backward", axis=axis)


def test_contract_violations_of_a_backward_pass_are_reported():
    with pytest.raises(AssertionError, match=r"should return a tuple \(dx, dgamma, dbeta\), but it returned a list"):
        onc.check_backward(lambda d, c: compact_backward(d, c, slip="list"), "as_list")

    def scales_dout(dout, cache):
        dout *= 2
        return compact_backward(dout / 2, cache)

    with pytest.raises(AssertionError, match="changed its argument dout in place"):
        onc.check_backward(scales_dout, "scales_dout")

    def edits_cache(dout, cache):
        cache["x_hat"] *= 1.0 + 1e-3
        return nodes_backward(dout, cache)

    with pytest.raises(AssertionError, match="changed its argument cache in place"):
        onc.check_backward_nodes(edits_cache, "edits_cache")

    def returns_float64(dout, cache):
        return {k: v.astype(np.float64) for k, v in nodes_backward(dout, cache).items()}

    with pytest.raises(AssertionError, match="dtype float64 but should have dtype float32"):
        onc.check_backward_nodes(returns_float64, "returns_float64")

    with pytest.raises(AssertionError, match="lacks the gradient of 'mu'"):
        onc.check_backward_nodes(lambda d, c: {k: v for k, v in nodes_backward(d, c).items() if k != "mu"}, "no_mu")
    with pytest.raises(AssertionError, match="should be a NumPy array, but it is a list"):
        onc.check_backward(lambda d, c: tuple(a.tolist() for a in compact_backward(d, c)), "lists")


def running_update(mean, var, x, momentum=0.1, slip=None):
    if slip == "in_place":
        mean *= 1 - momentum
        mean += momentum * x.mean(0)
        return mean, (1 - momentum) * var + momentum * x.var(0, ddof=1)
    ddof = 0 if slip == "biased" else 1
    if slip == "swapped":
        return momentum * mean + (1 - momentum) * x.mean(0), momentum * var + (1 - momentum) * x.var(0, ddof=1)
    if slip == "var_swapped":
        return (1 - momentum) * mean + momentum * x.mean(0), momentum * var + (1 - momentum) * x.var(0, ddof=1)
    return (1 - momentum) * mean + momentum * x.mean(0), (1 - momentum) * var + momentum * x.var(0, ddof=ddof)


def test_running_stats_check():
    onc.check_running_stats(running_update, "update", trials=8, seed=9)
    with pytest.raises(AssertionError, match="running_var is off .*unbiased one"):
        onc.check_running_stats(lambda *a: running_update(*a, slip="biased"), "update")
    with pytest.raises(AssertionError, match="running_mean is off .*weights are swapped"):
        onc.check_running_stats(lambda *a: running_update(*a, slip="swapped"), "update")
    with pytest.raises(AssertionError, match="running_var is off .*weights are swapped"):
        onc.check_running_stats(lambda *a: running_update(*a, slip="var_swapped"), "update")

    def updates_in_place(running_mean, running_var, x, momentum=0.1):
        return running_update(running_mean, running_var, x, momentum, slip="in_place")

    with pytest.raises(AssertionError, match="changed its arguments? running_mean.* in place"):
        onc.check_running_stats(updates_in_place, "update")


def test_forward_test_check():
    def forward_test(x, gamma, beta, mean, var, eps=1e-5):
        return gamma * (x - mean) / np.sqrt(var + eps) + beta

    onc.check_forward_test(forward_test, "forward_test", trials=8, seed=10)
    with pytest.raises(AssertionError, match="statistics of the batch it is given"):
        onc.check_forward_test(lambda x, g, b, m, v, eps=1e-5: make_forward()(x, g, b, eps)[0], "batch_stats")
    with pytest.raises(AssertionError, match="divides by the running variance"):
        onc.check_forward_test(lambda x, g, b, m, v, eps=1e-5: g * (x - m) / (v + eps) + b, "by_var")


def test_default_settings_are_checked():
    def eps_default_too_large(x, gamma, beta, eps=1e-3):
        return make_forward()(x, gamma, beta, eps)

    with pytest.raises(AssertionError, match="eps left to its default"):
        onc.check_forward(eps_default_too_large, "eps_default_too_large")
    with pytest.raises(AssertionError, match="momentum left to its default"):
        onc.check_running_stats(lambda mean, var, x, momentum=0.2: running_update(mean, var, x, momentum), "update")


def test_a_slip_that_this_input_cannot_tell_from_the_answer_is_never_named():
    want = np.array([1.0, 2.0, 3.0])
    with pytest.raises(AssertionError) as err:
        nc.check_array(2 * want, want, np.dtype(np.float64), "q", "here", [("it doubles", want * (1 + 1e-12))])
    assert "Likely cause" not in str(err.value)
    with pytest.raises(AssertionError, match="Likely cause: it doubles"):
        nc.check_array(2 * want, want, np.dtype(np.float64), "q", "here", [("it doubles", 2 * want)])


def test_values_near_zero_compare_on_an_absolute_scale():
    # a probability within float32's resolution of 1: its gradient p - 1 is rounding noise in both computations
    nc.check_array(np.array([-2.98e-7, 1.5e-7, 1.48e-7], np.float32), np.array([-2.0e-7, 1.0e-7, 1.0e-7]),
                   np.dtype(np.float32), "dlogits", "here")
    with pytest.raises(AssertionError):
        nc.check_array(np.array([-2e-3, 1e-3, 1e-3], np.float32), np.array([-2.0e-7, 1.0e-7, 1.0e-7]),
                       np.dtype(np.float32), "dlogits", "here")


def test_stored_cases_are_what_the_oracles_compute_now():
    """The visible checks' stored cases (inputs, expected results, slips' results) equal the oracles' results now."""
    stored, fresh = bn_cases.flatten(bn_cases.decode(DATA)), bn_cases.flatten(oracle_cases.visible_cases())
    assert stored.keys() == fresh.keys()
    for key, value in fresh.items():
        assert stored[key].dtype == value.dtype and stored[key].shape == value.shape, key
        if value.dtype.kind == "f":
            np.testing.assert_allclose(stored[key], value, rtol=1e-12, atol=1e-15, err_msg=key)
        else:
            assert np.array_equal(stored[key], value), key


def test_stored_cases_round_trip_and_refuse_what_they_cannot_hold():
    tree = {"a": [np.arange(3, dtype=np.float32), {"b": True, "c": 2, "d": 0.5, "e": "why"}], "f": np.eye(2)}
    back = bn_cases.decode(bn_cases.encode(tree))
    assert back["a"][1] == {"b": True, "c": 2, "d": 0.5, "e": "why"} and back["a"][0].dtype == np.float32
    np.testing.assert_array_equal(back["f"], np.eye(2))
    with pytest.raises(TypeError, match="only arrays, numbers"):
        bn_cases.flatten({"a": None})
    with pytest.raises(ValueError, match="cannot be stored"):
        bn_cases.flatten({"0": 1.0})
    with pytest.raises(KeyError, match="no stored cases named 'nope'"):
        bn_cases.load("nope")


@pytest.mark.parametrize("axis", [0, 1])
def test_visible_checks_pass_correct_layers_and_name_slips_on_the_stored_cases(axis):
    nc.check_forward(make_forward(axis), "my_forward", axis=axis)
    nc.check_backward(lambda d, c: compact_backward(d, c, axis), "my_backward", axis=axis)
    with pytest.raises(AssertionError, match=r"my_forward's out is off .*Likely cause: .*unbiased variance"):
        nc.check_forward(make_forward(axis, ddof=1), "my_forward", axis=axis)
    with pytest.raises(AssertionError, match=r"my_backward's dx is off .*forgets the path through the variance"):
        nc.check_backward(lambda d, c: compact_backward(d, c, axis, "no_var"), "my_backward", axis=axis)
    if axis == 0:
        nc.check_backward_nodes(nodes_backward, "my_nodes")
        nc.check_running_stats(running_update, "update")
        nc.check_forward_test(lambda x, g, b, m, v, eps=1e-5: g * (x - m) / np.sqrt(v + eps) + b, "forward_test")
        with pytest.raises(AssertionError, match="the gradient of var is off .*factor 1/2"):
            nc.check_backward_nodes(lambda d, c: nodes_backward(d, c, "no_half"), "my_nodes")
        with pytest.raises(AssertionError, match="running_var is off .*unbiased one"):
            nc.check_running_stats(lambda *a: running_update(*a, slip="biased"), "update")
        with pytest.raises(AssertionError, match="momentum left to its default"):
            nc.check_running_stats(lambda mean, var, x, momentum=0.2: running_update(mean, var, x, momentum), "u")
