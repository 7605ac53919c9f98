"""Typical wrong answers in residual_variance; `course validate` checks that each loses exactly `loses`."""

_RETURN = "return h + self.alpha * self.linear(torch.relu(x))"
_NORMALIZE = "        if self.norm == \"stream\":\n            h = self.bn(h)\n        x = self.bn(h) if self.norm == \"branch\" else h"
_ONE_PASS = ("    handles = [m.register_forward_hook(record) for m in modules]\n    try:\n        with torch.no_grad():\n"
             "            model(X)\n    finally:\n        for handle in handles:\n            handle.remove()\n")

MISTAKES = [
    # ResidualBlock: the formula
    {
        "name": "relu_after_the_sum",
        "explanation": "Puts the ReLU after the addition (the original ResNet block) instead of inside the branch.",
        "edits": {"residual_block": [(_RETURN, "return torch.relu(h + self.alpha * self.linear(x))")]},
        "loses": ["test_residual_block"],
    },
    {
        "name": "no_skip_connection",
        "explanation": "Returns only the branch, forgetting to add h.",
        "edits": {"residual_block": [(_RETURN, "return self.alpha * self.linear(torch.relu(x))")]},
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
    # ResidualBlock: the contract (inputs left alone, modes, state)
    {
        "name": "in_place_skip_addition",
        "explanation": "Adds the branch into h in place (h += ...), which changes the caller's tensor: right outputs, "
                       "wrong side effect, and autograd refuses it on a leaf.",
        "edits": {"residual_block": [(_RETURN, "h += self.alpha * self.linear(torch.relu(x))\n        return h")]},
        "loses": ["test_residual_block_modes"],
    },
    {
        "name": "batch_statistics_by_hand",
        "explanation": "Normalizes by hand with the batch statistics and BN's weight and bias instead of calling self.bn: "
                       "right in training mode, but evaluation mode and the running statistics are lost.",
        "edits": {"residual_block": [(_NORMALIZE,
                                      "        bn = lambda t: (t - t.mean(0)) / torch.sqrt(t.var(0, unbiased=False) + self.bn.eps)"
                                      " * self.bn.weight + self.bn.bias\n"
                                      "        if self.norm == \"stream\":\n            h = bn(h)\n"
                                      "        x = bn(h) if self.norm == \"branch\" else h")]},
        "loses": ["test_residual_block_modes"],
    },
    # block_variances: the values
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
        "name": "float32_result",
        "explanation": "Collects Python floats with .item() and returns torch.tensor(...): float32 for a float64 model.",
        "edits": {"block_variances": [("output.var(dim=0, unbiased=False).mean())", "output.var(dim=0, unbiased=False).mean().item())"),
                                      ("return torch.stack(variances).cpu()", "return torch.tensor(variances)")]},
        "loses": ["test_block_variances"],
    },
    {
        "name": "returns_a_list",
        "explanation": "Returns a list of floats instead of a tensor.",
        "edits": {"block_variances": [("return torch.stack(variances).cpu()", "return [v.item() for v in variances]")]},
        "loses": ["test_block_variances"],
    },
    {
        "name": "hooks_on_top_level_children_only",
        "explanation": "Looks for the modules among the model's direct children (model.children()), so a module nested "
                       "in a container (a block inside nn.ModuleList or nn.Sequential) gets no hook and no value.",
        "edits": {"block_variances": [("handles = [m.register_forward_hook(record) for m in modules]",
                                       "handles = [m.register_forward_hook(record) for m in model.children() if m in modules]")]},
        "loses": ["test_block_variances"],
    },
    {
        "name": "averaged_over_the_width",
        "explanation": "Averages over the units as a sum divided by output.shape[1], the width of a flat output: for a "
                       "convolution's (batch, channels, length) output that divides by the channels, not the units.",
        "edits": {"block_variances": [("output.var(dim=0, unbiased=False).mean())",
                                       "output.var(dim=0, unbiased=False).sum() / output.shape[1])")]},
        "loses": ["test_block_variances"],
    },
    # block_variances: hooks, state, modes, graphs
    {
        "name": "hooks_left_attached",
        "explanation": "Never removes the hooks, so every later forward pass keeps recording.",
        "edits": {"block_variances": [("handle.remove()", "pass")]},
        "loses": ["test_block_variances_clean"],
    },
    {
        "name": "hooks_kept_when_forward_fails",
        "explanation": "Removes the hooks after the forward pass but not in a finally block: an error leaves them attached.",
        "edits": {"block_variances": [(_ONE_PASS,
                                       "    handles = [m.register_forward_hook(record) for m in modules]\n"
                                       "    with torch.no_grad():\n        model(X)\n"
                                       "    for handle in handles:\n        handle.remove()\n")]},
        "loses": ["test_block_variances_clean"],
    },
    {
        "name": "error_swallowed",
        "explanation": "Catches the forward pass's error and prints it instead of letting it reach the caller.",
        "edits": {"block_variances": [("    finally:\n        for handle in handles:\n            handle.remove()\n",
                                       "    except Exception as err:\n        print(\"the forward pass failed:\", err)\n"
                                       "    for handle in handles:\n        handle.remove()\n")]},
        "loses": ["test_block_variances_clean"],
    },
    {
        "name": "one_pass_per_module",
        "explanation": "Runs the model once per module, with one hook at a time: right values, but BatchNorm's running "
                       "statistics are updated once per module.",
        "edits": {"block_variances": [(_ONE_PASS,
                                       "    for m in modules:\n        handle = m.register_forward_hook(record)\n"
                                       "        try:\n            with torch.no_grad():\n                model(X)\n"
                                       "        finally:\n            handle.remove()\n")]},
        "loses": ["test_block_variances_clean"],
    },
    {
        "name": "graph_kept",
        "explanation": "Runs the forward pass without torch.no_grad(): the returned tensor carries an autograd graph.",
        "edits": {"block_variances": [("        with torch.no_grad():\n            model(X)\n", "        model(X)\n")]},
        "loses": ["test_block_variances_clean"],
    },
    {
        "name": "variances_shared_across_calls",
        "explanation": "Keeps the list of recorded variances at module level, so each call returns those of earlier calls too.",
        "edits": {"block_variances": [("def block_variances(", "variances = []  # what the hooks record\n\n\ndef block_variances("),
                                      ("    variances = []\n\n    def record", "    def record")]},
        "loses": ["test_block_variances", "test_block_variances_clean"],
    },
    {
        "name": "eval_mode",
        "explanation": "Switches the model to eval mode, so BatchNorm uses its running statistics and the caller's model "
                       "stays in eval mode.",
        "edits": {"block_variances": [("        with torch.no_grad():\n", "        model.eval()\n        with torch.no_grad():\n")]},
        "loses": ["test_block_variances", "test_block_variances_clean"],
    },
    # growth_limits
    {
        "name": "alpha_not_squared",
        "explanation": "Scales the branch's variance by alpha instead of alpha squared.",
        "edits": {"growth_limits": [("alpha**2", "alpha")]},
        "loses": ["test_growth_limits"],
    },
    {
        "name": "std_added",
        "explanation": "Adds standard deviations instead of variances: (1 + alpha)^2 in the far limit.",
        "edits": {"growth_limits": [("centred = 1 + 2 * alpha**2 * (0.5 - 0.5 / math.pi)",
                                     "centred = (1 + math.sqrt(1 - 1 / math.pi) * alpha) ** 2"),
                                    ("far = 1 + 2 * alpha**2 * 0.5", "far = (1 + alpha) ** 2")]},
        "loses": ["test_growth_limits"],
    },
    {
        "name": "relu_mean_kept",
        "explanation": "Uses E[relu(z)^2] = s^2 / 2 as the variance in the centred limit, forgetting ReLU's mean.",
        "edits": {"growth_limits": [("(0.5 - 0.5 / math.pi)", "0.5")]},
        "loses": ["test_growth_limits"],
    },
    {
        "name": "he_factor_missing",
        "explanation": "Forgets the factor 2 of He's weight variance 2/n.",
        "edits": {"growth_limits": [("1 + 2 * alpha**2", "1 + alpha**2")]},
        "loses": ["test_growth_limits"],
    },
    # predictions
    {
        "name": "idealized_stream_prediction",
        "explanation": "Predicts V = 1 + alpha^2 = 10 after each block of the BN-on-the-stream network at alpha = 3, taking Var(f(x)) = Var(x).",
        "edits": {"predict_five_blocks": [("prediction_stream = 1 + 9 * (1 - 1 / math.pi)", "prediction_stream = 1 + 3.0**2")]},
        "loses": ["test_prediction_stream"],
    },
    {
        "name": "stream_prediction_at_alpha_one",
        "explanation": "Predicts the stream's V at alpha = 1, the value the run shows, instead of applying the law at alpha = 3.",
        "edits": {"predict_five_blocks": [("prediction_stream = 1 + 9 * (1 - 1 / math.pi)", "prediction_stream = 1.69")]},
        "loses": ["test_prediction_stream"],
    },
    {
        "name": "branch_alpha_not_squared",
        "explanation": "Scales the branch's contribution by alpha instead of alpha squared, for BN in the branch at alpha = 0.5.",
        "edits": {"predict_five_blocks": [("prediction_branch = 5 * (1 - 1 / math.pi) / 4", "prediction_branch = 5 * (1 - 1 / math.pi) / 2")]},
        "loses": ["test_prediction_branch"],
    },
    {
        "name": "one_block_ratio",
        "explanation": "Gives the factors of one block as the ratio over five blocks.",
        "edits": {"predict_five_blocks": [("prediction_plain = ((2 - 1 / math.pi) ** 5, 2.0**5)",
                                           "prediction_plain = (2 - 1 / math.pi, 2.0)")]},
        "loses": ["test_prediction_plain"],
    },
]
