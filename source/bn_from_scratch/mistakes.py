"""Typical wrong answers for bn_from_scratch; `course validate` proves each one loses exactly `loses`."""

MISTAKES = [
    {
        "name": "feature_axis",
        "explanation": "Normalizes each example over its features (axis=1) instead of each feature over the batch.",
        "edits": {"bn_forward": [("mu = x.mean(axis=0)", "mu = x.mean(axis=1, keepdims=True)"),
                                 ("var = x.var(axis=0)", "var = x.var(axis=1, keepdims=True)")]},
        "loses": ["test_bn_forward", "test_bn_backward", "test_bn_backward_compact", "test_classifier"],
    },
    {
        "name": "unbiased_variance",
        "explanation": "Normalizes with the unbiased variance (divides by N - 1) instead of the batch's own.",
        "edits": {"bn_forward": [("var = x.var(axis=0)", "var = x.var(axis=0, ddof=1)")]},
        "loses": ["test_bn_forward", "test_bn_backward", "test_bn_backward_compact"],
    },
    {
        "name": "dbeta_from_outputs",
        "explanation": "Sums the layer's outputs for dbeta instead of the upstream gradient.",
        "edits": {"bn_backward": [("dbeta = dout.sum(axis=0)", "dbeta = (gamma * x_hat + cache[\"beta\"]).sum(axis=0)")]},
        "loses": ["test_bn_backward"],
    },
    {
        "name": "forgets_mean_and_variance_paths",
        "explanation": "Back-propagates only along the direct path x -> x_hat, as if the mean and variance were constants.",
        "edits": {"bn_backward": [("dx = dxc + dmu / N", "dx = dx_hat / sigma")]},
        "loses": ["test_bn_backward"],
    },
    {
        "name": "autograd_backward",
        "explanation": "Lets torch autograd compute dx instead of deriving it.",
        "edits": {"bn_backward_compact": [(
            "    dx = gamma / (N * sigma) * (N * dout - dbeta - x_hat * dgamma)\n",
            "    x_t = torch.tensor(cache[\"x\"], requires_grad=True)\n"
            "    out_t = torch.from_numpy(gamma) * (x_t - x_t.mean(0)) / torch.sqrt(x_t.var(0, unbiased=False) + cache[\"eps\"])\n"
            "    out_t.backward(torch.from_numpy(dout))\n"
            "    dx = x_t.grad.numpy()\n",
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
        "name": "biased_running_variance",
        "explanation": "Feeds the biased batch variance into the running variance, unlike torch's BatchNorm1d.",
        "edits": {"running_stats": [("x.var(axis=0, ddof=1)", "x.var(axis=0)")]},
        "loses": ["test_running_stats"],
    },
    {
        "name": "batch_statistics_at_test_time",
        "explanation": "Predicts with the statistics of the batch being predicted instead of the running estimates.",
        "edits": {"predict": [(
            'out = bn_forward_test(logits, params["gamma"], params["beta"], params["running_mean"], params["running_var"])',
            'out, _ = bn_forward(logits, params["gamma"], params["beta"])',
        )]},
        "loses": ["test_classifier"],
    },
]
