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
        "name": "shared_batchnorm",
        "explanation": "builds the BatchNorm layers as [nn.BatchNorm1d(width)] * depth: one module (one set of "
                       "statistics) for every layer, which gives the same outputs at initialization",
        "edits": {"mlp": [("nn.ModuleList(nn.BatchNorm1d(width) for _ in range(depth))",
                           "nn.ModuleList([nn.BatchNorm1d(width)] * depth)")]},
        "loses": ["test_mlp_structure"],
    },
    {
        "name": "shared_hidden_linear",
        "explanation": "builds the hidden Linear layers with [nn.Linear(width, width)] * (depth - 1): one module reused",
        "edits": {"mlp": [(
            "nn.ModuleList(nn.Linear(in_features if i == 0 else width, width) for i in range(depth))",
            "nn.ModuleList([nn.Linear(in_features, width)] + [nn.Linear(width, width)] * (depth - 1))",
        )]},
        "loses": ["test_mlp_structure"],
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
        "explanation": "never zeroes the gradients, so they accumulate over batches (and start from stale ones)",
        "edits": {"train_epoch": [("        optimizer.zero_grad()\n", "")]},
        "loses": ["test_train_epoch", "test_train_epoch_state"],
    },
    {
        "name": "zero_grad_after_step",
        "explanation": "zeroes the gradients after each step instead of before each backward pass, so the first "
                       "step adds whatever .grad held before the call",
        "edits": {"train_epoch": [("        optimizer.zero_grad()\n", ""),
                                  ("        optimizer.step()\n", "        optimizer.step()\n        optimizer.zero_grad()\n")]},
        "loses": ["test_train_epoch_state"],
    },
    {
        "name": "not_in_training_mode",
        "explanation": "trains a model handed over in eval mode without calling model.train()",
        "edits": {"train_epoch": [("    model.train()\n", "")]},
        "loses": ["test_train_epoch"],
    },
    {
        "name": "no_shuffle",
        "explanation": "visits the examples in their stored order instead of a random one",
        "edits": {"train_epoch": [("order = torch.randperm(len(X), generator=generator).to(X.device)",
                                   "order = torch.arange(len(X), device=X.device)")]},
        "loses": ["test_train_epoch"],
    },
    {
        "name": "ignores_generator",
        "explanation": "draws the order from torch's global generator instead of the one it is given",
        "edits": {"train_epoch": [("torch.randperm(len(X), generator=generator)", "torch.randperm(len(X))")]},
        "loses": ["test_train_epoch", "test_train_epoch_state"],
    },
    {
        "name": "second_forward_for_the_loss",
        "explanation": "runs the model a second time on each batch to record its loss: in training mode that moves "
                       "BatchNorm's running statistics twice per step (and records the loss after the step)",
        "edits": {"train_epoch": [("total += loss.item() * len(idx)",
                                   "total += F.cross_entropy(model(X[idx]), y[idx]).item() * len(idx)")]},
        "loses": ["test_train_epoch"],
    },
    {
        "name": "loss_tensor_returned",
        "explanation": "adds up the loss tensors instead of their values, returning a tensor that keeps every "
                       "batch's autograd graph alive",
        "edits": {"train_epoch": [("total += loss.item() * len(idx)", "total += loss * len(idx)")]},
        "loses": ["test_train_epoch_state"],
    },
    {
        "name": "shuffles_data_in_place",
        "explanation": "shuffles the caller's X and y in place and then walks through them in order",
        "edits": {"train_epoch": [(
            "    order = torch.randperm(len(X), generator=generator).to(X.device)\n",
            "    order = torch.randperm(len(X), generator=generator).to(X.device)\n"
            "    X[:], y[:] = X[order].clone(), y[order].clone()\n"
            "    order = torch.arange(len(X), device=X.device)\n",
        )]},
        "loses": ["test_train_epoch_state"],
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
    {
        "name": "tie_is_divergence",
        "explanation": "calls a run that ends exactly at its starting loss diverged",
        "edits": {"has_diverged": [("losses[-1] > losses[0]", "losses[-1] >= losses[0]")]},
        "loses": ["test_has_diverged"],
    },
    {
        "name": "mean_square_after_relu",
        "explanation": "predicts the mean square of the ReLU's outputs (the inputs' 1.25) instead of the "
                       "pre-activations'",
        "edits": {"predict_mean_square": [("prediction_mean_square_50 = 2 * (0.5 ** 2 + 1.0)",
                                           "prediction_mean_square_50 = 0.5 ** 2 + 1.0")]},
        "loses": ["test_prediction_mean_square"],
    },
    {
        "name": "variance_for_mean_square",
        "explanation": "uses the inputs' variance where their mean square enters, as if they were centered",
        "edits": {"predict_mean_square": [("prediction_mean_square_50 = 2 * (0.5 ** 2 + 1.0)",
                                           "prediction_mean_square_50 = 2 * 1.0")]},
        "loses": ["test_prediction_mean_square"],
    },
    {
        "name": "lambda_of_infinite_batch",
        "explanation": "uses the large-batch limit pi / (pi - 1) for lambda; the ratio built on it still counts",
        "edits": {"predict_gradient_growth": [(
            "prediction_lambda_32 = ((32 - 1 + J1_prime) / (1 - J1) - 1) / (32 - 3)",
            "prediction_lambda_32 = math.pi / (math.pi - 1)")]},
        "loses": ["test_prediction_lambda"],
    },
    {
        "name": "correlation_over_B",
        "explanation": "takes c = -1/B for the correlation of two batch-normalized samples instead of -1/(B - 1): "
                       "lambda is off by 0.07 %; the ratio built on it still counts",
        "edits": {"predict_gradient_growth": [("c = -1 / (32 - 1)", "c = -1 / 32")]},
        "loses": ["test_prediction_lambda"],
    },
    {
        "name": "squared_norm_ratio",
        "explanation": "compounds lambda over the 40 layers without the square root: the ratio of squared norms",
        "edits": {"predict_gradient_growth": [("prediction_lambda_32 ** (40 / 2)", "prediction_lambda_32 ** 40")]},
        "loses": ["test_prediction_grad_ratio"],
    },
    {
        "name": "ratio_from_layer_2",
        "explanation": "counts the layers from the second hidden layer, as the run's table does, not from the tenth",
        "edits": {"predict_gradient_growth": [("prediction_lambda_32 ** (40 / 2)", "prediction_lambda_32 ** (48 / 2)")]},
        "loses": ["test_prediction_grad_ratio"],
    },
    {
        "name": "norm_ratio_for_squared_norms",
        "explanation": "takes the ratio of the gradient norms, although a step adds lr^2 |grad|^2 to the squared norm",
        "edits": {"predict_weight_growth": [("prediction_sq_norm_increase_ratio = math.pow(prediction_lambda_32, 40)",
                                             "prediction_sq_norm_increase_ratio = math.pow(prediction_lambda_32, 20)")]},
        "loses": ["test_prediction_weight_growth"],
    },
    {
        "name": "doubling_the_squared_norm",
        "explanation": "counts the steps that double the squared norm |theta|^2 instead of the norm |theta|",
        "edits": {"predict_lars_doubling": [("prediction_lars_doubling_steps = 2 * math.log(2) / math.log1p(0.03 ** 2)",
                                             "prediction_lars_doubling_steps = math.log(2) / math.log1p(0.03 ** 2)")]},
        "loses": ["test_prediction_lars_doubling"],
    },
    {
        "name": "relative_step_along_theta",
        "explanation": "lets each step lengthen theta by the fraction eta, as if the step pointed along theta",
        "edits": {"predict_lars_doubling": [("prediction_lars_doubling_steps = 2 * math.log(2) / math.log1p(0.03 ** 2)",
                                             "prediction_lars_doubling_steps = math.log(2) / math.log1p(0.03)")]},
        "loses": ["test_prediction_lars_doubling"],
    },
]
