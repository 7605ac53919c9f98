"""Typical wrong answers in bn_train_eval; `course validate` checks each loses exactly the tests listed."""

MISTAKES = [
    {
        "name": "unbiased_normalization",
        "explanation": "normalizes with the unbiased batch variance (divides by N - 1)",
        "edits": {"bn_train_forward": [("X.var(dim=0, correction=0)", "X.var(dim=0, correction=1)")]},
        "loses": ["test_bn_train_forward_example", "test_bn_train_forward_random", "test_my_batchnorm_train"],
    },
    {
        "name": "biased_running_variance",
        "explanation": "tracks the biased batch variance in the running estimate",
        "edits": {"update_running_stats": [("X.var(dim=0, correction=1)", "X.var(dim=0, correction=0)")]},
        "loses": ["test_update_running_stats_example", "test_update_running_stats_random", "test_my_batchnorm_train"],
    },
    {
        "name": "momentum_reversed",
        "explanation": "gives the momentum to the old estimate instead of the new batch statistic",
        "edits": {"update_running_stats": [
            ("(1 - factor) * running_mean + factor * X.mean(dim=0)", "factor * running_mean + (1 - factor) * X.mean(dim=0)"),
            ("(1 - factor) * running_var + factor * X.var", "factor * running_var + (1 - factor) * X.var"),
        ]},
        "loses": ["test_update_running_stats_example", "test_update_running_stats_random", "test_my_batchnorm_train"],
    },
    {
        "name": "eval_uses_batch_statistics",
        "explanation": "normalizes with the batch's own statistics in evaluation mode",
        "edits": {"bn_eval_forward": [("(X - running_mean) / torch.sqrt(running_var + eps)",
                                       "(X - X.mean(dim=0)) / torch.sqrt(X.var(dim=0, correction=0) + eps)")]},
        "loses": ["test_bn_eval_forward_example", "test_bn_eval_forward_random", "test_my_batchnorm_eval",
                  "test_my_batchnorm_batch_of_one"],
    },
    {
        "name": "updates_statistics_in_eval_mode",
        "explanation": "updates the running estimates in evaluation mode too",
        "edits": {"my_batchnorm": [
            ("        if self.training:\n            if X.shape[0] < 2:", "        if True:\n            if X.shape[0] < 2:"),
            ("            return bn_train_forward(X, gamma, beta, self.eps)",
             "            if self.training:\n                return bn_train_forward(X, gamma, beta, self.eps)"),
        ]},
        "loses": ["test_my_batchnorm_eval", "test_my_batchnorm_batch_of_one"],
    },
    {
        "name": "accepts_batch_of_one",
        "explanation": "trains on a batch of one example instead of refusing it",
        "edits": {"my_batchnorm": [("if X.shape[0] < 2:", "if X.shape[0] < 1:")]},
        "loses": ["test_my_batchnorm_batch_of_one"],
    },
    {
        "name": "refuses_one_in_eval_mode",
        "explanation": "refuses a batch of one example in evaluation mode too",
        "edits": {"my_batchnorm": [
            ("        if self.training:\n            if X.shape[0] < 2:\n"
             "                raise ValueError(f\"BatchNorm needs more than one example per batch in training mode, got {tuple(X.shape)}\")\n",
             "        if X.shape[0] < 2:\n"
             "            raise ValueError(f\"BatchNorm needs more than one example per batch, got {tuple(X.shape)}\")\n"
             "        if self.training:\n"),
        ]},
        "loses": ["test_my_batchnorm_batch_of_one"],
    },
    {
        "name": "checks_batch_after_update",
        "explanation": "refuses a batch of one only after counting it and updating the running estimates with it",
        "edits": {"my_batchnorm": [
            ("            if X.shape[0] < 2:\n"
             "                raise ValueError(f\"BatchNorm needs more than one example per batch in training mode, got {tuple(X.shape)}\")\n", ""),
            ("            return bn_train_forward(X, gamma, beta, self.eps)",
             "            if X.shape[0] < 2:\n"
             "                raise ValueError(f\"BatchNorm needs more than one example per batch in training mode, got {tuple(X.shape)}\")\n"
             "            return bn_train_forward(X, gamma, beta, self.eps)"),
        ]},
        "loses": ["test_my_batchnorm_batch_of_one"],
    },
    {
        "name": "running_update_in_place",
        "explanation": "updates the running estimates it was given in place instead of returning new tensors",
        "edits": {"update_running_stats": [
            ("new_mean = (1 - factor) * running_mean + factor * X.mean(dim=0)",
             "new_mean = running_mean.mul_(1 - factor).add_(factor * X.mean(dim=0))"),
            ("new_var = (1 - factor) * running_var + factor * X.var(dim=0, correction=1)",
             "new_var = running_var.mul_(1 - factor).add_(factor * X.var(dim=0, correction=1))"),
        ]},
        "loses": ["test_update_running_stats_example", "test_update_running_stats_random"],
    },
    {
        "name": "running_stats_as_list",
        "explanation": "returns the new estimates as a list where the docstring asks for a tuple",
        "edits": {"update_running_stats": [("return new_mean, new_var", "return [new_mean, new_var]")]},
        "loses": ["test_update_running_stats_example", "test_update_running_stats_random"],
    },
    {
        "name": "eps_outside_sqrt",
        "explanation": "adds eps to the standard deviation instead of the variance (invisible with eps = 1e-5)",
        "edits": {"bn_train_forward": [("torch.sqrt(var + eps)", "(torch.sqrt(var) + eps)")]},
        "loses": ["test_bn_train_forward_random", "test_my_batchnorm_train"],
    },
    {
        "name": "detached_statistics",
        "explanation": "detaches the batch statistics, so gradients ignore that they depend on the batch",
        "edits": {"bn_train_forward": [("mean = X.mean(dim=0)\n    var = X.var(dim=0, correction=0)",
                                        "mean = X.mean(dim=0).detach()\n    var = X.var(dim=0, correction=0).detach()")]},
        "loses": ["test_bn_train_forward_random", "test_my_batchnorm_train"],
    },
    {
        "name": "flat_view_of_the_batch",
        "explanation": "goes through a flat view of the batch (X.view(-1), reshaped back), which only a contiguous "
                       "tensor allows: a batch stored non-contiguously, as a transposed tensor is, makes view raise, "
                       "where nn.BatchNorm1d accepts it (reshape or plain reductions work on any layout)",
        "edits": {"bn_train_forward": [("mean = X.mean(dim=0)", "mean = X.view(-1).view(X.shape).mean(dim=0)")]},
        "loses": ["test_bn_train_forward_random"],
    },
    {
        "name": "calls_library_batch_norm",
        "explanation": "calls torch's batch_norm instead of implementing it",
        "edits": {"bn_train_forward": [("return gamma * (X - mean) / torch.sqrt(var + eps) + beta",
                                        "return nn.functional.batch_norm(X, None, None, gamma, beta, training=True, eps=eps)")]},
        "loses": ["test_bn_train_forward_example", "test_bn_train_forward_random"],
    },
    {
        "name": "eval_casts_to_float32",
        "explanation": "converts the input to float32 in evaluation mode (float64 batches come back float32)",
        "edits": {"bn_eval_forward": [("return gamma * (X - running_mean)", "X = X.float()\n    return gamma * (X - running_mean)")]},
        "loses": ["test_bn_eval_forward_random", "test_my_batchnorm_eval"],
    },
    {
        "name": "forgets_num_batches_tracked",
        "explanation": "never counts the batches (momentum=None then divides by zero)",
        "edits": {"my_batchnorm": [("                self.num_batches_tracked += 1\n", "")]},
        "loses": ["test_my_batchnorm_train"],
    },
    {
        "name": "running_stats_keep_graph",
        "explanation": "updates the running estimates with autograd on, so they carry the batch's graph",
        "edits": {"my_batchnorm": [("with torch.no_grad():", "if True:")]},
        "loses": ["test_my_batchnorm_train"],
    },
    {
        "name": "predicts_std_one",
        "explanation": "predicts that BatchNorm's training-mode output has torch.std exactly 1",
        "edits": {"predict_two_modes": [("prediction_train_std = (10 / 9) ** 0.5", "prediction_train_std = 1.0")]},
        "loses": ["test_prediction_train_std"],
    },
    {
        "name": "predicts_std_of_runs_batch",
        "explanation": "predicts the torch.std of the run's batch of 25 instead of the asked batch of 10",
        "edits": {"predict_two_modes": [("prediction_train_std = (10 / 9) ** 0.5", "prediction_train_std = (25 / 24) ** 0.5")]},
        "loses": ["test_prediction_train_std"],
    },
    {
        "name": "running_mean_at_runs_momentum",
        "explanation": "predicts the running mean with the run's momentum 0.1 instead of the asked 0.3",
        "edits": {"predict_running_mean": [("5 * (1 - 0.7 ** 6)", "5 * (1 - 0.9 ** 6)")]},
        "loses": ["test_prediction_running_mean_6"],
    },
    {
        "name": "within_1pct_rounded_down",
        "explanation": "rounds ln 0.01 / ln 0.7 = 12.9 down, a batch before the running mean is within 1 %",
        "edits": {"predict_running_mean": [("prediction_batches_within_1pct = 13", "prediction_batches_within_1pct = 12")]},
        "loses": ["test_prediction_batches_within_1pct"],
    },
    {
        "name": "times_closer_at_300_batches",
        "explanation": "predicts the ratio of the errors after the run's 300 batches, not after 800",
        "edits": {"predict_closer": [("(800 * 0.1 / (2 - 0.1)) ** 0.5", "(300 * 0.1 / (2 - 0.1)) ** 0.5")]},
        "loses": ["test_prediction_closer"],
    },
    {
        "name": "predicts_normalization_in_eval",
        "explanation": "predicts that a fresh layer normalizes the batch in evaluation mode too",
        "edits": {"predict_two_modes": [('prediction_fresh_eval = "b"', 'prediction_fresh_eval = "a"')]},
        "loses": ["test_prediction_fresh_eval"],
    },
]
