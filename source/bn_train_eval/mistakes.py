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
        "loses": ["test_update_running_stats_example", "test_update_running_stats_random",
                  "test_my_batchnorm_train", "test_my_batchnorm_eval"],
    },
    {
        "name": "momentum_reversed",
        "explanation": "gives the momentum to the old estimate instead of the new batch statistic",
        "edits": {"update_running_stats": [
            ("(1 - factor) * running_mean + factor * X.mean(dim=0)", "factor * running_mean + (1 - factor) * X.mean(dim=0)"),
            ("(1 - factor) * running_var + factor * X.var", "factor * running_var + (1 - factor) * X.var"),
        ]},
        "loses": ["test_update_running_stats_example", "test_update_running_stats_random",
                  "test_my_batchnorm_train", "test_my_batchnorm_eval"],
    },
    {
        "name": "eval_uses_batch_statistics",
        "explanation": "normalizes with the batch's own statistics in evaluation mode",
        "edits": {"bn_eval_forward": [("(X - running_mean) / torch.sqrt(running_var + eps)",
                                       "(X - X.mean(dim=0)) / torch.sqrt(X.var(dim=0, correction=0) + eps)")]},
        "loses": ["test_bn_eval_forward_example", "test_bn_eval_forward_random", "test_my_batchnorm_eval"],
    },
    {
        "name": "updates_statistics_in_eval_mode",
        "explanation": "updates the running estimates in evaluation mode too",
        "edits": {"my_batchnorm": [
            ("        if self.training:\n            if X.shape[0] < 2:", "        if True:\n            if X.shape[0] < 2:"),
            ("            return bn_train_forward(X, gamma, beta, self.eps)",
             "            if self.training:\n                return bn_train_forward(X, gamma, beta, self.eps)"),
        ]},
        "loses": ["test_my_batchnorm_eval"],
    },
    {
        "name": "accepts_batch_of_one",
        "explanation": "trains on a batch of one example instead of refusing it",
        "edits": {"my_batchnorm": [("if X.shape[0] < 2:", "if X.shape[0] < 1:")]},
        "loses": ["test_my_batchnorm_train"],
    },
]
