"""Typical wrong answers in why_batchnorm_helps; `course validate` checks that each loses exactly `loses`."""

_MEAN = "mean = h.mean(dim=-2, keepdim=True)"
_SCALE = "scale = torch.sqrt(h.var(dim=-2, unbiased=False, keepdim=True) + eps)"
_GROUP_SD = "prediction_group_mean_sd = 1 / math.sqrt(12)"
_GROUP_MSD = "prediction_group_var_msd = (2 * 12 - 1) / 12**2"

MISTAKES = [
    # normalize: the values
    {
        "name": "unbiased_variance",
        "explanation": "Uses the unbiased variance (divides by batch - 1), unlike BatchNorm in training.",
        "edits": {"normalize": [(_SCALE, "scale = torch.sqrt(h.var(dim=-2, keepdim=True) + eps)")]},
        "loses": ["test_normalize"],
    },
    {
        "name": "statistics_over_features",
        "explanation": "Takes the statistics over the features of each example (dim -1) instead of over the batch.",
        "edits": {"normalize": [(_MEAN, "mean = h.mean(dim=-1, keepdim=True)"),
                                (_SCALE, "scale = torch.sqrt(h.var(dim=-1, unbiased=False, keepdim=True) + eps)")]},
        "loses": ["test_normalize"],
    },
    {
        "name": "batch_is_dim_zero",
        "explanation": "Takes the statistics over dim 0: right for (batch, features), wrong for the (models, batch, "
                       "features) inputs of another rank that the experiments pass.",
        "edits": {"normalize": [(_MEAN, "mean = h.mean(dim=0, keepdim=True)"),
                                (_SCALE, "scale = torch.sqrt(h.var(dim=0, unbiased=False, keepdim=True) + eps)")]},
        "loses": ["test_normalize"],
    },
    {
        "name": "variance_only_centres",
        "explanation": "Centres in the variance-only variant too, which makes it the full normalization.",
        "edits": {"normalize": [("        return h / scale", "        return (h - mean) / scale")]},
        "loses": ["test_normalize"],
    },
    {
        "name": "eps_outside_the_root",
        "explanation": "Adds eps to the standard deviation instead of the variance.",
        "edits": {"normalize": [(_SCALE, "scale = h.var(dim=-2, unbiased=False, keepdim=True).sqrt() + eps")]},
        "loses": ["test_normalize"],
    },
    {
        "name": "eps_argument_ignored",
        "explanation": "Hard-codes BatchNorm's default eps instead of honouring the argument.",
        "edits": {"normalize": [(_SCALE, "scale = torch.sqrt(h.var(dim=-2, unbiased=False, keepdim=True) + 1e-5)")]},
        "loses": ["test_normalize"],
    },
    {
        "name": "no_batch_of_one_check",
        "explanation": "Normalizes a batch of one (to zeros) instead of refusing it as nn.BatchNorm1d does in training.",
        "edits": {"normalize": [("    if h.shape[-2] < 2:\n        raise ValueError(f\"normalize needs a batch of at least two along dim -2, "
                                 "not shape {tuple(h.shape)}\")\n", "")]},
        "loses": ["test_normalize"],
    },
    # normalize: the contract (gradients, inputs left alone, non-contiguous inputs)
    {
        "name": "detached_statistics",
        "explanation": "Detaches the batch mean and variance: right values, but the gradient ignores that every "
                       "example moves the statistics.",
        "edits": {"normalize": [(_MEAN, "mean = h.mean(dim=-2, keepdim=True).detach()"),
                                (_SCALE, "scale = torch.sqrt(h.var(dim=-2, unbiased=False, keepdim=True) + eps).detach()")]},
        "loses": ["test_normalize_contract"],
    },
    {
        "name": "centres_in_place",
        "explanation": "Subtracts the mean from h in place (h -= mean): right values, but the caller's tensor changes.",
        "edits": {"normalize": [("    if kind == \"mean\":\n        return h - mean\n",
                                 "    h = h.detach().sub_(mean.detach()).requires_grad_(h.requires_grad)\n"
                                 "    if kind == \"mean\":\n        return h\n"),
                                ("        return h / scale\n    return (h - mean) / scale",
                                 "        return (h + mean) / scale\n    return h / scale")]},
        "loses": ["test_normalize_contract"],
    },
    {
        "name": "flattens_with_view",
        "explanation": "Flattens the leading dimensions with view, which fails on the non-contiguous inputs that "
                       "torch's own functions accept.",
        "edits": {"normalize": [(_MEAN, "mean = h.view(-1, *h.shape[-2:]).mean(dim=1, keepdim=True).view(*h.shape[:-2], 1, h.shape[-1])")]},
        "loses": ["test_normalize_contract"],
    },
    # the noise of a ghost group's statistics (section 4)
    {
        "name": "group_mean_variance_for_sd",
        "explanation": "Gives the variance of the group mean, 1 / n, for its standard deviation.",
        "edits": {"predict_group_noise": [(_GROUP_SD, "prediction_group_mean_sd = 1 / 12")]},
        "loses": ["test_prediction_group_mean_sd"],
    },
    {
        "name": "group_mean_with_n_minus_one",
        "explanation": "Borrows the unbiased variance's n - 1 for the mean: 1 / sqrt(n - 1).",
        "edits": {"predict_group_noise": [(_GROUP_SD, "prediction_group_mean_sd = 1 / math.sqrt(11)")]},
        "loses": ["test_prediction_group_mean_sd"],
    },
    {
        "name": "group_variance_without_bias",
        "explanation": "Gives the variance of the biased group variance about its own mean, forgetting that its mean "
                       "(n - 1) / n is not the true variance 1.",
        "edits": {"predict_group_noise": [(_GROUP_MSD, "prediction_group_var_msd = 2 * 11 / 12**2")]},
        "loses": ["test_prediction_group_var_msd"],
    },
    {
        "name": "group_variance_unbiased",
        "explanation": "Uses the unbiased variance's 2 / (n - 1), though BatchNorm divides by n.",
        "edits": {"predict_group_noise": [(_GROUP_MSD, "prediction_group_var_msd = 2 / 11")]},
        "loses": ["test_prediction_group_var_msd"],
    },
    {
        "name": "group_variance_large_n",
        "explanation": "Uses the large-group limit 2 / n.",
        "edits": {"predict_group_noise": [(_GROUP_MSD, "prediction_group_var_msd = 2 / 12")]},
        "loses": ["test_prediction_group_var_msd"],
    },
    {
        "name": "group_variance_root",
        "explanation": "Gives the root of the mean squared deviation instead of the mean squared deviation.",
        "edits": {"predict_group_noise": [(_GROUP_MSD, "prediction_group_var_msd = math.sqrt(23 / 144)")]},
        "loses": ["test_prediction_group_var_msd"],
    },
]
