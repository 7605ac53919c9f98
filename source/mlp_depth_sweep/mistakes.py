"""Typical wrong answers to the mlp_depth_sweep exercises, and the tests that must catch each one."""

MISTAKES = [
    {
        "name": "relu_on_logits",
        "explanation": "applies a ReLU to the logits of the head",
        "edits": {"mlp": [("return self.head(X)", "return F.relu(self.head(X))")]},
        "loses": ["test_mlp_forward"],
    },
    {
        "name": "batchnorm_before_relu",
        "explanation": "puts BatchNorm between the Linear layer and the ReLU instead of after the ReLU",
        "edits": {"mlp": [(
            "            X = F.relu(linear(X))\n            if self.norms is not None:\n"
            "                X = self.norms[i](X)\n",
            "            X = linear(X)\n            if self.norms is not None:\n"
            "                X = self.norms[i](X)\n            X = F.relu(X)\n",
        )]},
        "loses": ["test_mlp_forward"],
    },
    {
        "name": "evaluate_in_training_mode",
        "explanation": "measures in training mode, so BatchNorm uses batch statistics and updates its buffers",
        "edits": {"evaluate": [("    model.eval()\n", "")]},
        "loses": ["test_evaluate"],
    },
    {
        "name": "mode_not_restored",
        "explanation": "switches to eval mode and leaves the model there",
        "edits": {"evaluate": [("    model.train(was_training)\n", "")]},
        "loses": ["test_evaluate"],
    },
    {
        "name": "always_back_to_training",
        "explanation": "calls model.train() afterwards even when the model was in eval mode",
        "edits": {"evaluate": [("model.train(was_training)", "model.train()")]},
        "loses": ["test_evaluate"],
    },
    {
        "name": "missing_zero_grad",
        "explanation": "never zeroes the gradients, so they accumulate over batches",
        "edits": {"train_epoch": [("        optimizer.zero_grad()\n", "")]},
        "loses": ["test_train_epoch"],
    },
    {
        "name": "not_in_training_mode",
        "explanation": "trains a model handed over in eval mode without calling model.train()",
        "edits": {"train_epoch": [("    model.train()\n", "")]},
        "loses": ["test_train_epoch"],
    },
    {
        "name": "divergence_misses_nan",
        "explanation": "only compares the last loss with the first, which is False for NaN",
        "edits": {"has_diverged": [(
            "any(not math.isfinite(loss) for loss in losses) or losses[-1] > losses[0]", "losses[-1] > losses[0]")]},
        "loses": ["test_has_diverged"],
    },
    {
        "name": "divergence_misses_inf",
        "explanation": "checks for NaN with math.isnan, which misses an infinite loss along the way",
        "edits": {"has_diverged": [("not math.isfinite(loss)", "math.isnan(loss)")]},
        "loses": ["test_has_diverged"],
    },
    {
        "name": "any_rise_is_divergence",
        "explanation": "calls a run diverged as soon as any loss exceeds the starting loss",
        "edits": {"has_diverged": [("losses[-1] > losses[0]", "max(losses) > losses[0]")]},
        "loses": ["test_has_diverged"],
    },
]
