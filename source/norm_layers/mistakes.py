"""Typical wrong answers in norm_layers; `course validate` checks that each loses exactly the tests listed."""

MISTAKES = [
    {
        "name": "biased_running_variance",
        "explanation": "tracks the biased batch variance in the running estimate",
        "edits": {"my_batchnorm2d": [("m * var * n / (n - 1)", "m * var")]},
        "loses": ["test_my_batchnorm2d_example", "test_my_batchnorm2d_running"],
    },
    {
        "name": "unbiased_normalization",
        "explanation": "normalizes with the unbiased variance (divides by NHW - 1)",
        "edits": {"my_batchnorm2d": [("var = X.var(dim=(0, 2, 3), correction=0)", "var = X.var(dim=(0, 2, 3), correction=1)"),
                                     ("m * var * n / (n - 1)", "m * var")]},
        "loses": ["test_my_batchnorm2d_example", "test_my_batchnorm2d_train"],
    },
    {
        "name": "running_variance_corrected_by_batch_size",
        "explanation": "makes the running variance unbiased with N / (N - 1), the batch size, instead of NHW / (NHW - 1)",
        "edits": {"my_batchnorm2d": [("m * var * n / (n - 1)", "m * var * X.shape[0] / (X.shape[0] - 1)")]},
        "loses": ["test_my_batchnorm2d_example", "test_my_batchnorm2d_running"],
    },
    {
        "name": "momentum_none_ignored",
        "explanation": "uses the momentum as given, so momentum=None (a cumulative average) fails",
        "edits": {"my_batchnorm2d": [
            ("m = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum", "m = self.momentum")]},
        "loses": ["test_my_batchnorm2d_running"],
    },
    {
        "name": "running_estimates_keep_graph",
        "explanation": "updates the running estimates outside torch.no_grad(), so they carry an autograd graph across batches",
        "edits": {"my_batchnorm2d": [("            with torch.no_grad():\n                self.num_batches_tracked += 1",
                                      "            if True:\n                self.num_batches_tracked += 1")]},
        "loses": ["test_my_batchnorm2d_running"],
    },
    {
        "name": "eval_uses_batch_statistics",
        "explanation": "normalizes with the batch's own statistics in evaluation mode too",
        "edits": {"my_batchnorm2d": [("            mean, var = self.running_mean, self.running_var",
                                      "            mean, var = X.mean(dim=(0, 2, 3)), X.var(dim=(0, 2, 3), correction=0)")]},
        "loses": ["test_my_batchnorm2d_example", "test_my_batchnorm2d_eval"],
    },
    {
        "name": "updates_running_estimates_in_eval",
        "explanation": "updates the running estimates (and counts the batch) in evaluation mode as well",
        "edits": {"my_batchnorm2d": [
            ("        if self.training:\n            n = X.numel()", "        if True:\n            n = X.numel()"),
            ("                self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)\n",
             "                self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)\n"
             "        if not self.training:\n            mean, var = self.running_mean, self.running_var\n"),
            ("        else:\n            mean, var = self.running_mean, self.running_var\n", ""),
        ]},
        "loses": ["test_my_batchnorm2d_example", "test_my_batchnorm2d_eval"],
    },
    {
        "name": "refuses_a_batch_of_one",
        "explanation": "refuses a batch of one image in every mode, as BatchNorm1d's training mode does",
        "edits": {"my_batchnorm2d": [("        per_channel = (1, -1, 1, 1)  # a (C,) tensor broadcast over (N, C, H, W)",
                                      "        per_channel = (1, -1, 1, 1)  # a (C,) tensor broadcast over (N, C, H, W)\n"
                                      "        if X.shape[0] < 2:\n"
                                      "            raise ValueError('BatchNorm needs more than one example')")]},
        "loses": ["test_my_batchnorm2d_example", "test_my_batchnorm2d_train", "test_my_batchnorm2d_running",
                  "test_my_batchnorm2d_eval"],
    },
    {
        "name": "input_changed_in_place",
        "explanation": "subtracts the mean from the input tensor in place",
        "edits": {"my_batchnorm2d": [("X_hat = (X - mean.view(per_channel)) / torch.sqrt(var.view(per_channel) + self.eps)",
                                      "X_hat = X.sub_(mean.detach().view(per_channel)) / torch.sqrt(var.view(per_channel) + self.eps)")]},
        "loses": ["test_my_batchnorm2d_example", "test_my_batchnorm2d_train", "test_my_batchnorm2d_running",
                  "test_my_batchnorm2d_eval"],
    },
    {
        "name": "interleaved_groups",
        "explanation": "puts channel c into group c % G instead of grouping consecutive channels",
        "edits": {"group_norm": [("groups = X.reshape(N, num_groups, -1)",
                                  "groups = X.reshape(N, C // num_groups, num_groups, H * W).transpose(1, 2).reshape(N, num_groups, -1)"),
                                 ("X_hat = ((groups - mean) / torch.sqrt(var + eps)).reshape(N, C, H, W)",
                                  "X_hat = ((groups - mean) / torch.sqrt(var + eps)).reshape(N, num_groups, C // num_groups, H * W)"
                                  ".transpose(1, 2).reshape(N, C, H, W)")]},
        "loses": ["test_group_norm_example", "test_group_norm_random"],
    },
    {
        "name": "group_norm_ignores_groups",
        "explanation": "normalizes every channel on its own (InstanceNorm) whatever the number of groups",
        "edits": {"group_norm": [("groups = X.reshape(N, num_groups, -1)", "groups = X.reshape(N, C, -1)")]},
        "loses": ["test_group_norm_example", "test_group_norm_random"],
    },
    {
        "name": "first_order_weight_decay",
        "explanation": "shrinks the squared norm by 1 - 2 lr wd, the first-order approximation of (1 - lr wd)^2",
        "edits": {"next_sq_norm": [("(1 - lr * weight_decay) ** 2 * sq_norm", "(1 - 2 * lr * weight_decay) * sq_norm")]},
        "loses": ["test_next_sq_norm_example", "test_next_sq_norm_sgd"],
    },
    {
        "name": "next_sq_norm_in_place",
        "explanation": "scales the array of squared norms it was given in place",
        "edits": {"next_sq_norm": [("    return (1 - lr * weight_decay) ** 2 * sq_norm + lr**2 * grad_sq_norm",
                                    "    sq_norm *= (1 - lr * weight_decay) ** 2\n    return sq_norm + lr**2 * grad_sq_norm")]},
        "loses": ["test_next_sq_norm_sgd"],
    },
    {
        "name": "angle_without_clamp",
        "explanation": "takes acos of the cosine without clamping it to [-1, 1]",
        "edits": {"angular_update": [("math.acos(min(1.0, max(-1.0, cos)))", "math.acos(cos)")]},
        "loses": ["test_angular_update_random"],
    },
    {
        "name": "angle_in_float32",
        "explanation": "computes the cosine in the tensors' own dtype (float32 cannot resolve small angles)",
        "edits": {"angular_update": [("w_before.reshape(-1).double(), w_after.reshape(-1).double()",
                                      "w_before.reshape(-1), w_after.reshape(-1)"),
                                     ("math.acos(min(1.0, max(-1.0, cos)))", "math.acos(min(1.0, max(-1.0, float(cos))))")]},
        "loses": ["test_angular_update_random"],
    },
    {
        "name": "angle_as_tensor",
        "explanation": "returns the angle as a 0-d tensor instead of a Python float",
        "edits": {"angular_update": [("    cos = (a @ b / (a.norm() * b.norm())).item()\n    return math.acos(min(1.0, max(-1.0, cos)))",
                                      "    cos = a @ b / (a.norm() * b.norm())\n    return torch.acos(cos.clamp(-1.0, 1.0))")]},
        "loses": ["test_angular_update_example", "test_angular_update_random"],
    },
    {
        "name": "counts_before_refusing",
        "explanation": "counts the batch before checking it, so a refused input still moves num_batches_tracked",
        "edits": {"my_batchnorm2d": [("            n = X.numel() // X.shape[1]  # values per channel: N * H * W\n",
                                      "            self.num_batches_tracked += 1\n"
                                      "            n = X.numel() // X.shape[1]  # values per channel: N * H * W\n"),
                                     ("                self.num_batches_tracked += 1\n", "")]},
        "loses": ["test_my_batchnorm2d_train"],
    },
    {
        "name": "next_sq_norm_loops_over_rows",
        "explanation": "loops over the array with float(), which works for one layer's steps but not for steps x layers",
        "edits": {"next_sq_norm": [("    return (1 - lr * weight_decay) ** 2 * sq_norm + lr**2 * grad_sq_norm",
                                    "    if isinstance(sq_norm, np.ndarray):\n"
                                    "        return np.array([(1 - lr * weight_decay) ** 2 * float(s) + lr**2 * float(g)\n"
                                    "                         for s, g in zip(sq_norm, grad_sq_norm)])\n"
                                    "    return (1 - lr * weight_decay) ** 2 * sq_norm + lr**2 * grad_sq_norm")]},
        "loses": ["test_next_sq_norm_sgd"],
    },
    {
        "name": "angle_normalizes_in_place",
        "explanation": "normalizes the flattened tensors in place, which changes float64 inputs (.double() returns the same tensor)",
        "edits": {"angular_update": [("    cos = (a @ b / (a.norm() * b.norm())).item()",
                                      "    a /= a.norm()\n    b /= b.norm()\n    cos = (a @ b).item()")]},
        "loses": ["test_angular_update_random"],
    },
    {
        "name": "group_norm_centres_in_place",
        "explanation": "subtracts the group means from a view of X in place",
        "edits": {"group_norm": [("    X_hat = ((groups - mean) / torch.sqrt(var + eps)).reshape(N, C, H, W)",
                                  "    groups -= mean\n    X_hat = (groups / torch.sqrt(var + eps)).reshape(N, C, H, W)")]},
        "loses": ["test_group_norm_random"],
    },
    {
        "name": "iid_spread_over_images",
        "explanation": "counts the 16 images as the independent values, not their 16 x 14 x 14 values",
        "edits": {"predict_noise": [("prediction_iid_spread = 1 / math.sqrt(16 * 14 * 14)",
                                     "prediction_iid_spread = 1 / math.sqrt(16)")]},
        "loses": ["test_prediction_iid_spread"],
    },
    {
        "name": "spread_ratio_upside_down",
        "explanation": "gives the spread at batch size 2 as a multiple of the spread at 128",
        "edits": {"predict_noise": [("prediction_spread_ratio = math.sqrt(2 / 128)",
                                     "prediction_spread_ratio = math.sqrt(128 / 2)")]},
        "loses": ["test_prediction_spread_ratio"],
    },
    {
        "name": "equilibrium_of_the_run",
        "explanation": "predicts the equilibrium angle for the run's weight decay 0.01 instead of 0.04",
        "edits": {"predict_equilibrium": [("prediction_equilibrium_angle = math.sqrt(2 * 0.2 * 0.04)",
                                           "prediction_equilibrium_angle = math.sqrt(2 * 0.2 * 0.01)")]},
        "loses": ["test_prediction_equilibrium_angle"],
    },
    {
        "name": "group_norm_views_a_non_contiguous_input",
        "explanation": "splits X into groups with .view, which refuses a non-contiguous X that nn.GroupNorm accepts",
        "edits": {"group_norm": [("groups = X.reshape(N, num_groups, -1)", "groups = X.view(N, num_groups, -1)")]},
        "loses": ["test_group_norm_random"],
    },
    {
        "name": "normalized_bound_with_unbiased_variance",
        "explanation": "bounds the normalized value with the unbiased variance, (B - 1) / sqrt(B), not sqrt(B - 1)",
        "edits": {"predict_largest_normalized": [("prediction_largest_normalized = math.sqrt(7)",
                                                  "prediction_largest_normalized = 7 / math.sqrt(8)")]},
        "loses": ["test_prediction_largest_normalized"],
    },
]
