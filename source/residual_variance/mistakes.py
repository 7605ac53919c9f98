"""Typical wrong answers in residual_variance; `course validate` checks that each loses exactly `loses`."""

MISTAKES = [
    {
        "name": "relu_after_the_sum",
        "explanation": "Puts the ReLU after the addition (the original ResNet block) instead of inside the branch.",
        "edits": {"residual_block": [("return h + self.alpha * self.linear(torch.relu(x))",
                                      "return torch.relu(h + self.alpha * self.linear(x))")]},
        "loses": ["test_residual_block"],
    },
    {
        "name": "no_skip_connection",
        "explanation": "Returns only the branch, forgetting to add h.",
        "edits": {"residual_block": [("return h + self.alpha * self.linear(torch.relu(x))",
                                      "return self.alpha * self.linear(torch.relu(x))")]},
        "loses": ["test_residual_block"],
    },
    {
        "name": "stream_bn_only_in_branch",
        "explanation": "For norm='stream' normalizes only the branch input; the skip still carries the raw h.",
        "edits": {"residual_block": [("x = self.bn(h) if self.norm == \"branch\" else h",
                                      "x = self.bn(h) if self.norm != \"none\" else h"),
                                     ("            h = self.bn(h)\n", "            pass\n")]},
        "loses": ["test_residual_block"],
    },
    {
        "name": "alpha_ignored",
        "explanation": "Forgets to scale the branch by alpha.",
        "edits": {"residual_block": [("h + self.alpha * self.linear", "h + self.linear")]},
        "loses": ["test_residual_block"],
    },
    {
        "name": "variance_over_units",
        "explanation": "Takes the variance over the units of each example (dim=1) instead of over the batch.",
        "edits": {"block_variances": [("output.var(dim=0, unbiased=False)", "output.var(dim=1, unbiased=False)")]},
        "loses": ["test_block_variances"],
    },
    {
        "name": "unbiased_variance",
        "explanation": "Uses the unbiased variance (divides by batch - 1), unlike BatchNorm.",
        "edits": {"block_variances": [("output.var(dim=0, unbiased=False)", "output.var(dim=0)")]},
        "loses": ["test_block_variances"],
    },
    {
        "name": "input_instead_of_output",
        "explanation": "Records the variance of the module's input instead of its output.",
        "edits": {"block_variances": [("output.var(dim=0", "inputs[0].var(dim=0")]},
        "loses": ["test_block_variances"],
    },
    {
        "name": "hooks_left_attached",
        "explanation": "Never removes the hooks, so every later forward pass keeps recording.",
        "edits": {"block_variances": [("handle.remove()", "pass")]},
        "loses": ["test_block_variances"],
    },
    {
        "name": "eval_mode",
        "explanation": "Switches the model to eval mode, so BatchNorm uses its initial running statistics.",
        "edits": {"block_variances": [("with torch.no_grad():\n", "model.eval()\n        with torch.no_grad():\n")]},
        "loses": ["test_block_variances"],
    },
    {
        "name": "alpha_not_squared",
        "explanation": "Predicts 1 + alpha: scales the variance by alpha instead of alpha squared.",
        "edits": {"predicted_growth": [("return 1 + alpha**2", "return 1 + alpha")]},
        "loses": ["test_predicted_growth"],
    },
    {
        "name": "std_added",
        "explanation": "Adds standard deviations instead of variances: (1 + alpha)^2.",
        "edits": {"predicted_growth": [("return 1 + alpha**2", "return (1 + alpha) ** 2")]},
        "loses": ["test_predicted_growth"],
    },
]
