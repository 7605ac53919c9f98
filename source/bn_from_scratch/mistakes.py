"""Typical wrong answers for bn_from_scratch; `course validate` proves each one loses exactly `loses`.

Each test grades one concept: a backward pass gets the reference cache, the classifier the reference layers, so
a slip costs only the test of the function it is in.
"""

MISTAKES = [
    {
        "name": "feature_axis",
        "explanation": "Normalizes each example over its features (axis=1) instead of each feature over the batch.",
        "edits": {"bn_forward": [("mu = x.mean(axis=0)", "mu = x.mean(axis=1, keepdims=True)"),
                                 ("var = (xc * xc).mean(axis=0)", "var = (xc * xc).mean(axis=1, keepdims=True)")]},
        "loses": ["test_bn_forward"],
    },
    {
        "name": "unbiased_variance",
        "explanation": "Normalizes with the unbiased variance (divides by N - 1) instead of the batch's own.",
        "edits": {"bn_forward": [("var = (xc * xc).mean(axis=0)", "var = (xc * xc).sum(axis=0) / (x.shape[0] - 1)")]},
        "loses": ["test_bn_forward"],
    },
    {
        "name": "centers_x_in_place",
        "explanation": "Centers the caller's x in place (x -= mu), so the input array comes back changed.",
        "edits": {"bn_forward": [("xc = x - mu ", "x -= mu\n    xc = x")]},
        "loses": ["test_bn_forward"],
    },
    {
        "name": "forward_upcasts_to_float64",
        "explanation": "Converts x to float64 first 'to be safe', so a float32 batch comes back as float64.",
        "edits": {"bn_forward": [("    mu = x.mean(axis=0)", "    x = np.asarray(x, dtype=np.float64)\n    mu = x.mean(axis=0)")]},
        "loses": ["test_bn_forward"],
    },
    {
        "name": "dbeta_from_outputs",
        "explanation": "Sums the layer's outputs for dbeta instead of the upstream gradient.",
        "edits": {"bn_backward_nodes": [("dbeta = dout.sum(axis=0)",
                                         'dbeta = (gamma * cache["x_hat"] + cache["beta"]).sum(axis=0)')]},
        "loses": ["test_bn_backward"],
    },
    {
        "name": "forgets_mean_and_variance_paths",
        "explanation": "Back-propagates only along the direct path x -> x_hat, as if the mean and variance were constants.",
        "edits": {"bn_backward_nodes": [("dx = dxc + dmu / N", "dx = dx_hat / std")]},
        "loses": ["test_bn_backward"],
    },
    {
        "name": "xc_forgets_variance_path",
        "explanation": "Gives xc only the gradient through x_hat, forgetting that xc also feeds the variance.",
        "edits": {"bn_backward_nodes": [("dxc = dx_hat / std + dvar * 2 * xc / N", "dxc = dx_hat / std")]},
        "loses": ["test_bn_backward"],
    },
    {
        "name": "autograd_backward",
        "explanation": "Lets torch autograd compute dx instead of deriving it.",
        "edits": {"bn_backward_compact": [(
            "    dx = gamma / (N * std) * (N * dout - dbeta - x_hat * dgamma)\n",
            "    x_t = torch.tensor(cache[\"x\"], requires_grad=True)\n"
            "    out_t = torch.from_numpy(gamma) * (x_t - x_t.mean(0)) / torch.sqrt(x_t.var(0, unbiased=False) + cache[\"eps\"])\n"
            "    out_t.backward(torch.from_numpy(dout))\n"
            "    dx = x_t.grad.numpy()\n",
        )]},
        "loses": ["test_bn_backward_compact"],
    },
    {
        "name": "compact_returns_list",
        "explanation": "Returns the three gradients as a list instead of the tuple the docstring asks for.",
        "edits": {"bn_backward_compact": [("    return dx, dgamma, dbeta", "    return [dx, dgamma, dbeta]")]},
        "loses": ["test_bn_backward_compact"],
    },
    {
        "name": "compact_scales_dout_in_place",
        "explanation": "Multiplies the caller's dout by N in place while forming the closed form.",
        "edits": {"bn_backward_compact": [(
            "    dx = gamma / (N * std) * (N * dout - dbeta - x_hat * dgamma)\n",
            "    dout *= N\n    dx = gamma / (N * std) * (dout - dbeta - x_hat * dgamma)\n",
        )]},
        "loses": ["test_bn_backward_compact"],
    },
    {
        "name": "softmax_without_max_shift",
        "explanation": "Exponentiates the raw logits, which overflows for large ones.",
        "edits": {"softmax_cross_entropy": [("shifted = logits - logits.max(axis=1, keepdims=True)", "shifted = logits")]},
        "loses": ["test_softmax_cross_entropy"],
    },
    {
        "name": "log_of_underflowed_probability",
        "explanation": "Subtracts the row maximum but takes the log of the softmax probabilities, which underflow to 0.",
        "edits": {"softmax_cross_entropy": [(
            "    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))\n"
            "    rows = np.arange(len(y))\n"
            "    loss = -log_probs[rows, y].mean()\n"
            "    dlogits = np.exp(log_probs)\n",
            "    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)\n"
            "    rows = np.arange(len(y))\n"
            "    loss = -np.log(probs[rows, y]).mean()\n"
            "    dlogits = probs.copy()\n",
        )]},
        "loses": ["test_softmax_cross_entropy"],
    },
    {
        "name": "softmax_shifts_logits_in_place",
        "explanation": "Subtracts the row maximum from the caller's logits in place.",
        "edits": {"softmax_cross_entropy": [("shifted = logits - logits.max(axis=1, keepdims=True)",
                                             "logits -= logits.max(axis=1, keepdims=True)\n    shifted = logits")]},
        "loses": ["test_softmax_cross_entropy"],
    },
    {
        "name": "softmax_float64_onehot",
        "explanation": "Builds the one-hot labels with np.eye (float64), so float32 logits get a float64 gradient.",
        "edits": {"softmax_cross_entropy": [(
            "    dlogits = np.exp(log_probs)\n    dlogits[rows, y] -= 1\n    dlogits /= len(y)\n",
            "    onehot = np.eye(logits.shape[1])[y]\n    dlogits = (np.exp(log_probs) - onehot) / len(y)\n",
        )]},
        "loses": ["test_softmax_cross_entropy"],
    },
    {
        "name": "biased_running_variance",
        "explanation": "Feeds the biased batch variance into the running variance, unlike torch's BatchNorm1d.",
        "edits": {"running_stats": [("x.var(axis=0, ddof=1)", "x.var(axis=0)")]},
        "loses": ["test_running_stats"],
    },
    {
        "name": "running_stats_in_place",
        "explanation": "Updates the caller's running estimates in place instead of returning new arrays.",
        "edits": {"running_stats": [(
            "    new_mean = (1 - momentum) * running_mean + momentum * x.mean(axis=0)\n"
            "    new_var = (1 - momentum) * running_var + momentum * x.var(axis=0, ddof=1)\n",
            "    running_mean *= 1 - momentum\n    running_mean += momentum * x.mean(axis=0)\n"
            "    running_var *= 1 - momentum\n    running_var += momentum * x.var(axis=0, ddof=1)\n"
            "    new_mean, new_var = running_mean, running_var\n",
        )]},
        "loses": ["test_running_stats"],
    },
    {
        "name": "batch_statistics_at_test_time",
        "explanation": "Normalizes at test time with the statistics of the batch being predicted instead of the running estimates.",
        "edits": {"running_stats": [(
            "    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta",
            "    return bn_forward(x, gamma, beta, eps)[0]",
        )]},
        "loses": ["test_running_stats"],
    },
    {
        "name": "dW_skips_bn",
        "explanation": "Takes dW from the gradient at BN's output (dZ) instead of at its input (dlogits).",
        "edits": {"classifier": [('grads = {"W": X.T @ dlogits', 'grads = {"W": X.T @ dZ')]},
        "loses": ["test_classifier"],
    },
    {
        "name": "classifier_ignores_layers",
        "explanation": "Calls its own bn_forward, softmax_cross_entropy and bn_backward_compact instead of the layers it "
                       "is given: right with the lab's layers, wrong with any others (the argument is ignored).",
        "edits": {"classifier": [('layers["bn_forward"](logits', 'bn_forward(logits'),
                                 ('layers["softmax_cross_entropy"](Z, y)', 'softmax_cross_entropy(Z, y)'),
                                 ('layers["bn_backward"](dZ, cache)', 'bn_backward_compact(dZ, cache)')]},
        "loses": ["test_classifier"],
    },
    {
        "name": "hook_late_binding",
        "explanation": "Writes the hook as a lambda that reads the loop variable, so every hook stores under the last name.",
        "edits": {"record_grads": [("lambda grad, name=name:", "lambda grad:")]},
        "loses": ["test_record_grads"],
    },
    {
        "name": "ln_without_keepdims",
        "explanation": "Takes layer norm's row statistics without keepdims, so they broadcast against the wrong axis.",
        "edits": {"layer_norm": [("mu = x.mean(axis=1, keepdims=True)", "mu = x.mean(axis=1)"),
                                 ("var = (xc * xc).mean(axis=1, keepdims=True)", "var = (xc * xc).mean(axis=1)")]},
        "loses": ["test_ln_forward"],
    },
    {
        "name": "ln_gamma_outside_sums",
        "explanation": "Copies batch norm's closed form into layer norm, pulling gamma out of the sums over the features.",
        "edits": {"layer_norm": [(
            "    dx = (D * g - g.sum(axis=1, keepdims=True) - x_hat * (g * x_hat).sum(axis=1, keepdims=True)) / (D * std)",
            "    dx = cache[\"gamma\"] * (D * dout - dout.sum(axis=1, keepdims=True)"
            " - x_hat * (dout * x_hat).sum(axis=1, keepdims=True)) / (D * std)",
        )]},
        "loses": ["test_ln_backward"],
    },
    {
        "name": "predicts_mu_changes_too",
        "explanation": "Predicts that the gradient of mu changes too, since backpropagation computes it after var's.",
        "edits": {"prediction_wrong_nodes": [('["var", "xc", "logits", "W"]', '["var", "xc", "mu", "logits", "W"]')]},
        "loses": ["test_prediction_wrong_nodes"],
    },
    {
        "name": "predicts_only_the_mean_removed",
        "explanation": "Removes only the all-ones direction from a random upstream column, forgetting x_hat: (N - 1) / N.",
        "edits": {"prediction_all_ones": [("prediction_kept_fraction = 38 / 40", "prediction_kept_fraction = 39 / 40")]},
        "loses": ["test_prediction_all_ones"],
    },
    {
        "name": "float32_error_independent_of_step",
        "explanation": "Predicts for h = 1e-3 the error of h = 1e-5, forgetting that the rounding error is divided by h.",
        "edits": {"prediction_float32": [("prediction_float32_rel_error = 2e-4", "prediction_float32_rel_error = 2e-2")]},
        "loses": ["test_prediction_float32"],
    },
    {
        "name": "alone_accuracy_of_four_classes",
        "explanation": "Predicts for five classes the one-point accuracy of four, the share of one class in the run.",
        "edits": {"prediction_alone": [("prediction_alone_accuracy = 1 / 5", "prediction_alone_accuracy = 0.25")]},
        "loses": ["test_prediction_alone"],
    },
]
