"""Tests for course_utils.bn_softmax and its oracle course_oracles.bn_softmax: data, references against independent
computations, the torch replica and its planted bug, the training loop, the recorded layers, and the checks of the
classifier's exercises against right and wrong answers, on random cases (the hidden tests') and on the stored ones
(the visible tests')."""

import functools

import numpy as np
import pytest
import torch

from course_oracles import bn_softmax as obs
from course_oracles import norm_checks as onc
from course_utils import bn_softmax as bs
from course_utils import gradcheck as gc


def softmax_ce(logits, y, slip=None):
    """A NumPy softmax cross-entropy; `slip` plants a typical mistake."""
    shifted = logits if slip == "no_shift" else logits - logits.max(axis=1, keepdims=True)
    if slip == "in_place":
        logits -= logits.max(axis=1, keepdims=True)
        shifted = logits
    rows = np.arange(len(y))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if slip == "log_of_probs":
            probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
            return -np.log(probs[rows, y]).mean(), (probs - np.eye(logits.shape[1], dtype=logits.dtype)[y]) / len(y)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[rows, y].mean()
    if slip == "over_batch":
        columns = np.exp(logits - logits.max(axis=0, keepdims=True))
        columns /= columns.sum(axis=0, keepdims=True)
        return loss, (columns - np.eye(logits.shape[1], dtype=logits.dtype)[y]) / len(y)
    if slip == "float64_onehot":
        return loss, (np.exp(log_probs) - np.eye(logits.shape[1])[y]) / len(y)
    dlogits = np.exp(log_probs)
    dlogits[rows, y] -= 1
    if slip == "sum":
        return loss * len(y), dlogits
    if slip == "summed_loss":
        return loss * len(y), dlogits / len(y)
    if slip == "sign":
        return loss, -dlogits / len(y)
    return loss, dlogits / len(y)


def bn_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(0)
    xc = x - mu
    var = (xc * xc).mean(0)
    std = np.sqrt(var + eps)
    x_hat = xc / std
    return gamma * x_hat + beta, {"x": x, "gamma": gamma, "beta": beta, "eps": eps, "mu": mu, "xc": xc, "var": var,
                                  "std": std, "x_hat": x_hat}


def bn_backward(dout, cache):
    x_hat, std, gamma = cache["x_hat"], cache["std"], cache["gamma"]
    n = dout.shape[0]
    dbeta, dgamma = dout.sum(0), (dout * x_hat).sum(0)
    return gamma / (n * std) * (n * dout - dbeta - x_hat * dgamma), dgamma, dbeta


def loss_and_grads(params, X, y, layers, slip=None):
    logits = X @ params["W"]
    Z, cache = layers["bn_forward"](logits, params["gamma"], params["beta"])
    loss, dZ = layers["softmax_cross_entropy"](Z, y)
    dlogits, dgamma, dbeta = layers["bn_backward"](dZ, cache)
    if slip == "in_place":
        params["W"] -= 0.0 * params["W"] + 1e-3
    return loss, {"W": X.T @ (dZ if slip == "dZ" else dlogits), "gamma": dgamma, "beta": dbeta}


def update_running_stats(mean, var, x, momentum=0.1):
    return (1 - momentum) * mean + momentum * x.mean(0), (1 - momentum) * var + momentum * x.var(0, ddof=1)


def bn_forward_test(x, gamma, beta, mean, var, eps=1e-5):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def numpy_layers():
    return {"bn_forward": bn_forward, "bn_backward": bn_backward, "softmax_cross_entropy": softmax_ce,
            "update_running_stats": update_running_stats, "bn_forward_test": bn_forward_test}


def autograd_loss_and_grads(params, X, y, layers):
    """The classifier's loss and gradients by torch autograd through the replica (ignores `layers`)."""
    loss, nodes = bs.torch_replica(X, y, params)
    loss.backward()
    return float(loss.detach()), {k: nodes[k].grad.numpy().astype(X.dtype) for k in bs.PARAMS}


def test_clusters_are_balanced_and_reproducible():
    X, y = bs.make_clusters()
    assert X.shape == (240, 2) and np.bincount(y).tolist() == [60] * 4
    np.testing.assert_array_equal(X, bs.make_clusters()[0])


def test_references_agree_with_numpy_and_torch():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(7, 3)), rng.integers(0, 3, size=7)
    loss, d = obs.softmax_cross_entropy(logits, y)
    want_loss, want_d = softmax_ce(logits, y)
    assert loss == pytest.approx(want_loss, rel=1e-12) and np.allclose(d, want_d, atol=1e-15)
    assert obs.softmax_cross_entropy(logits.astype(np.float32), y)[1].dtype == np.float32


def test_reference_loss_and_grads_match_finite_differences():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(9, 3)), rng.integers(0, 4, size=9)
    params = bs.init_params(3, 4, seed=2)
    params["gamma"] = rng.uniform(0.5, 2, size=4)
    grads = obs.replica_grads(X, y, params)
    def replica_loss(p):
        return float(bs.torch_replica(X, y, p)[0].detach())

    assert replica_loss(params) == pytest.approx(loss_and_grads(params, X, y, numpy_layers())[0], rel=1e-12)
    for key in bs.PARAMS:
        num = gc.numerical_gradient(lambda v: replica_loss({**params, key: v}), params[key])
        assert gc.rel_error(grads[key], num) < 1e-7, key


def test_replica_nodes_match_the_hand_derivation_and_the_planted_bug_spreads_as_the_lab_says():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(12, 2)), rng.integers(0, 4, size=12)
    params = {"W": rng.normal(size=(2, 4)), "gamma": rng.uniform(0.5, 2, size=4), "beta": rng.normal(size=4)}
    grads, buggy = obs.replica_grads(X, y, params), obs.replica_grads(X, y, params, sqrt_slip=True)
    logits = X @ params["W"]
    ref = onc.norm_graph(logits, params["gamma"], params["beta"], grads["Z"])
    for node, key in [("x_hat", "dx_hat"), ("std", "dstd"), ("var", "dvar"), ("xc", "dxc"), ("mu", "dmu"),
                      ("logits", "dx"), ("gamma", "dgamma"), ("beta", "dbeta")]:
        np.testing.assert_allclose(grads[node], ref[key], rtol=1e-9, atol=1e-14, err_msg=node)
    changed = {k for k in grads if gc.rel_error(grads[k], buggy[k]) > 1e-3}
    assert changed == {"var", "xc", "logits", "W"}
    assert gc.rel_error(grads["mu"], buggy["mu"]) < 1e-12


def test_training_with_the_reference_or_numpy_layers_separates_the_clusters():
    X, y = bs.make_clusters()
    params, history = bs.train(X, y, loss_and_grads, numpy_layers(), num_epochs=10, progress=False)
    assert history[-1][1] == 1.0 and history[-1][0] < history[0][0]
    ref, _ = bs.train(X, y, autograd_loss_and_grads, numpy_layers(), num_epochs=10, progress=False)
    for key in bs.PARAMS:
        np.testing.assert_allclose(params[key], ref[key], rtol=1e-8, atol=1e-10)
    assert (bs.predict(params, X[:1], bn_forward_test) == bs.predict(params, X, bn_forward_test)[:1]).all()


def test_softmax_check_accepts_a_correct_answer():
    obs.check_softmax_cross_entropy(softmax_ce, "softmax_ce", trials=12, seed=4)


@pytest.mark.parametrize("slip, words", [
    ("no_shift", "with each row's maximum subtracted first .* it returns the right values, so the exponentials overflow"),
    ("log_of_probs", "takes the log of a probability that underflows to 0"),
    ("in_place", "changed its argument logits in place"),
    ("float64_onehot", "dtype float64 but should have dtype float32"),
    ("sum", "factor 1/N"),
    ("summed_loss", "sums the loss over the batch; the loss is the mean"),
    ("over_batch", r"takes the softmax over the batch \(axis=0\)"),
    ("sign", "the sign is flipped"),
])
def test_softmax_slips_are_named(slip, words):
    with pytest.raises(AssertionError, match=words) as err:
        obs.check_softmax_cross_entropy(functools.partial(softmax_ce, slip=slip), "softmax_ce", trials=6, seed=5)
    if slip == "log_of_probs":
        assert "Subtract each row's own maximum" not in str(err.value)


def test_softmax_non_finite_without_a_confirmed_cause_states_only_facts():
    def always_nan_for_large(logits, y):
        loss, d = softmax_ce(logits, y)
        return (float("nan") if np.abs(logits).max() > 100 else loss), d

    with pytest.raises(AssertionError) as err:
        obs.check_softmax_cross_entropy(always_nan_for_large, "nan_for_large", trials=3, seed=6)
    assert "NaN or infinite" in str(err.value) and "Likely" not in str(err.value) and "overflow" not in str(err.value)


def test_loss_and_grads_check():
    obs.check_loss_and_grads(loss_and_grads, "loss_and_grads", trials=8, seed=7)
    with pytest.raises(AssertionError, match="gradient of W is off .*dZ"):
        obs.check_loss_and_grads(functools.partial(loss_and_grads, slip="dZ"), "loss_and_grads")
    with pytest.raises(AssertionError, match="changed its argument params in place"):
        obs.check_loss_and_grads(functools.partial(loss_and_grads, slip="in_place"), "loss_and_grads")


def test_loss_and_grads_check_fails_an_answer_that_ignores_its_layers():
    def own_layers(params, X, y, layers):
        return loss_and_grads(params, X, y, numpy_layers())

    with pytest.raises(AssertionError, match="use the layers you are given"):
        obs.check_loss_and_grads(own_layers, "own_layers", trials=3)


def test_recorded_layers_answer_only_the_calls_they_recorded():
    x, gamma = np.arange(6.0).reshape(3, 2), np.ones(2)
    layer = bs.Replay("bn_forward", [[[x, gamma], [2 * x, {"x": x}]]])
    out, cache = layer(x + 1e-12, gamma.copy(), 1e-5)  # within rounding, extra arguments ignored
    np.testing.assert_array_equal(out, 2 * x)
    out[0, 0] = 99.0
    assert layer(x, gamma)[0][0, 0] == 0.0  # each call gets its own copy
    with pytest.raises(AssertionError, match=r"layers\['bn_forward'\] was called with an argument 1 \(ndarray of "
                                             r"shape \(3, 2\)\) that is not what this step"):
        layer(x + 1.0, gamma)
    with pytest.raises(AssertionError, match="1 positional argument"):
        layer(x)
    with pytest.raises(AssertionError, match="argument 2"):
        layer(x, gamma.astype(np.float32) * 2)


def test_visible_classifier_checks_run_on_the_stored_cases():
    bs.check_softmax_cross_entropy(softmax_ce, "softmax_ce")
    bs.check_loss_and_grads(loss_and_grads, "loss_and_grads")
    bs.check_record_grads(record, "record")
    with pytest.raises(AssertionError, match="factor 1/N"):
        bs.check_softmax_cross_entropy(functools.partial(softmax_ce, slip="sum"), "softmax_ce")
    with pytest.raises(AssertionError, match="gradient of W is off .*dZ"):
        bs.check_loss_and_grads(functools.partial(loss_and_grads, slip="dZ"), "loss_and_grads")
    with pytest.raises(AssertionError, match="use the layers you are given"):
        bs.check_loss_and_grads(lambda params, X, y, layers: loss_and_grads(params, X, y, numpy_layers()), "own")
    with pytest.raises(AssertionError, match="the last name of the loop"):
        bs.check_record_grads(functools.partial(record, slip="late_binding"), "record")


def test_an_autograd_answer_through_the_replica_loses_the_classifier_test():
    """torch_replica is no answer to the classifier exercise: it ignores the layers it is handed."""
    with pytest.raises(AssertionError, match="use the layers you are given"):
        bs.check_loss_and_grads(autograd_loss_and_grads, "autograd")


def record(nodes, slip=None):
    grads = {}
    for name, tensor in nodes.items():
        if slip == "late_binding":
            tensor.register_hook(lambda grad: grads.__setitem__(name, grad))
        elif slip == "returns_scaled":
            tensor.register_hook(lambda grad, name=name: grads.__setitem__(name, grad) or 2 * grad)
        else:
            tensor.register_hook(functools.partial(_store, grads, name))
    return grads


def _store(grads, name, grad):
    grads[name] = grad.clone()


def test_record_grads_check():
    obs.check_record_grads(record, "record", trials=2)
    with pytest.raises(AssertionError, match="holds one entry, 'Z', the last name of the loop"):
        obs.check_record_grads(functools.partial(record, slip="late_binding"), "record")
    with pytest.raises(AssertionError, match="the gradient reaching W changes"):
        obs.check_record_grads(functools.partial(record, slip="returns_scaled"), "record")
    with pytest.raises(AssertionError, match="should return a dict"):
        obs.check_record_grads(lambda nodes: None, "record")


def test_plot_history_returns_two_panels():
    fig, axes = bs.plot_history([(1.0, 0.5), (0.5, 0.9), (0.2, 1.0)])
    assert len(axes) == 2 and axes[0].get_yscale() == "log"
