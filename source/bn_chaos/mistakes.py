"""Typical wrong answers in bn_chaos; `course validate` checks that each loses exactly `loses`."""

MISTAKES = [
    # linear_bn_net
    {
        "name": "gaussian_weights",
        "explanation": "Initializes the weights with a scaled Gaussian instead of a random orthogonal matrix.",
        "edits": {"linear_bn_net": [("nn.init.orthogonal_(linear.weight)", "nn.init.normal_(linear.weight, std=width ** -0.5)")]},
        "loses": ["test_linear_bn_net"],
    },
    {
        "name": "linear_with_bias",
        "explanation": "Keeps the bias of the Linear layers.",
        "edits": {"linear_bn_net": [("nn.Linear(width, width, bias=False)", "nn.Linear(width, width)")]},
        "loses": ["test_linear_bn_net"],
    },
    {
        "name": "net_in_eval_mode",
        "explanation": "Returns the network in eval mode, so BatchNorm uses its running statistics and there is no chaos.",
        "edits": {"linear_bn_net": [("return nn.Sequential(*layers)", "return nn.Sequential(*layers).eval()")]},
        "loses": ["test_linear_bn_net"],
    },
    {
        "name": "one_batchnorm_for_all_layers",
        "explanation": "Builds one BatchNorm1d before the loop and puts it after every Linear layer: the outputs of a new "
                       "network are right, but the layers share their BatchNorm parameters and running statistics.",
        "edits": {"linear_bn_net": [("    layers = []\n", "    layers = []\n    bn = nn.BatchNorm1d(width)\n"),
                                    ("layers += [linear, nn.BatchNorm1d(width)]", "layers += [linear, bn]")]},
        "loses": ["test_linear_bn_net"],
    },
    {
        "name": "one_linear_for_all_layers",
        "explanation": "Builds one Linear layer before the loop and re-initializes it in every iteration, so every layer "
                       "uses the same weight.",
        "edits": {"linear_bn_net": [("    layers = []\n", "    layers = []\n    linear = nn.Linear(width, width, bias=False)\n"),
                                    ("        linear = nn.Linear(width, width, bias=False)\n", "")]},
        "loses": ["test_linear_bn_net"],
    },
    {
        "name": "reseeds_global_generator",
        "explanation": "Seeds the global random generator inside the function, so every call returns the same network "
                       "and the caller's random stream is reset.",
        "edits": {"linear_bn_net": [("    layers = []\n", "    torch.manual_seed(0)\n    layers = []\n")]},
        "loses": ["test_linear_bn_net"],
    },
    # predictions
    {
        "name": "lambda_of_the_norm",
        "explanation": "Predicts the growth of the gradient norm, sqrt(lambda), instead of the squared norm's lambda.",
        "edits": {"predictions_gradient_growth": [("prediction_lambda_32 = ((B - 1 + J1_prime) / (1 - J1) - 1) / (B - 3)",
                                                   "prediction_lambda_32 = math.sqrt(((B - 1 + J1_prime) / (1 - J1) - 1) / (B - 3))")]},
        "loses": ["test_prediction_lambda_32"],
    },
    {
        "name": "correlation_over_B",
        "explanation": "Takes c = -1/B for the correlation of two batch-normalized samples instead of -1/(B - 1) "
                       "(lambda off by 0.07 %).",
        "edits": {"predictions_gradient_growth": [("c = -1 / (B - 1)", "c = -1 / B")]},
        "loses": ["test_prediction_lambda_32"],
    },
    {
        "name": "eval_variance_of_training_mode",
        "explanation": "Predicts V = 1 in evaluation mode, as if BatchNorm normalized with the batch's statistics there too.",
        "edits": {"prediction_eval_correlation": [("prediction_eval_variance = 1 / 2**8", "prediction_eval_variance = 1.0")]},
        "loses": ["test_prediction_eval_correlation"],
    },
    {
        "name": "float64_cloud",
        "explanation": "Predicts that float64 shows the same cloud as float32, taking the round-off for the chaos between batches.",
        "edits": {"prediction_float64_shape": [('\nprediction_float64_shape = "ellipse"\n', '\nprediction_float64_shape = "cloud"\n')]},
        "loses": ["test_prediction_float64_shape"],
    },
    # weight_grad_sq_norms
    {
        "name": "norm_not_squared",
        "explanation": "Returns the gradient norms instead of their squares.",
        "edits": {"weight_grad_sq_norms": [("m.weight.grad.pow(2).sum()", "m.weight.grad.norm()")]},
        "loses": ["test_weight_grad_sq_norms"],
    },
    {
        "name": "gradients_accumulate",
        "explanation": "Never zeroes the gradients, so a second call adds to the first call's gradients.",
        "edits": {"weight_grad_sq_norms": [("    model.zero_grad()\n", "")]},
        "loses": ["test_weight_grad_sq_norms"],
    },
    {
        "name": "model_run_twice",
        "explanation": "Runs the model once to look at its output and again for the loss, so each call moves BatchNorm's running statistics twice.",
        "edits": {"weight_grad_sq_norms": [("    loss = (model(X) * G).sum()\n", "    model(X)\n    loss = (model(X) * G).sum()\n")]},
        "loses": ["test_weight_grad_sq_norms"],
    },
    {
        "name": "gradients_in_eval_mode",
        "explanation": "Switches the model to eval mode, so BatchNorm uses running statistics instead of the batch's.",
        "edits": {"weight_grad_sq_norms": [("model.zero_grad()\n", "model.eval()\n    model.zero_grad()\n")]},
        "loses": ["test_weight_grad_sq_norms"],
    },
    {
        "name": "forces_training_mode",
        "explanation": "Calls model.train() to be sure of batch statistics, which changes a model that was in eval mode.",
        "edits": {"weight_grad_sq_norms": [("model.zero_grad()\n", "model.train()\n    model.zero_grad()\n")]},
        "loses": ["test_weight_grad_sq_norms"],
    },
    {
        "name": "top_level_linears_only",
        "explanation": "Iterates over the model's top-level children instead of model.modules(), missing nested Linear layers.",
        "edits": {"weight_grad_sq_norms": [("for m in model.modules() if", "for m in model if")]},
        "loses": ["test_weight_grad_sq_norms"],
    },
    {
        "name": "float32_python_numbers",
        "explanation": "Collects the squared norms as Python numbers and builds a new tensor, which is float32 whatever the model's dtype.",
        "edits": {"weight_grad_sq_norms": [("torch.stack([m.weight.grad.pow(2).sum() for m in linears]).detach()",
                                            "torch.tensor([m.weight.grad.pow(2).sum().item() for m in linears])")]},
        "loses": ["test_weight_grad_sq_norms"],
    },
    # fit_growth
    {
        "name": "fit_the_norm",
        "explanation": "Fits the log of the norms (square roots) instead of the squared norms.",
        "edits": {"fit_growth": [("dtype=torch.float64))", "dtype=torch.float64).sqrt())")]},
        "loses": ["test_fit_growth"],
    },
    {
        "name": "fit_wrong_direction",
        "explanation": "Returns exp(slope), the growth towards the output, instead of exp(-slope).",
        "edits": {"fit_growth": [("torch.exp(-slope)", "torch.exp(slope)")]},
        "loses": ["test_fit_growth"],
    },
    {
        "name": "fit_end_points_only",
        "explanation": "Uses only the first and last layer instead of a least-squares fit through all layers.",
        "edits": {"fit_growth": [("slope, intercept = torch.linalg.lstsq(A, y[:, None]).solution.flatten()",
                                  "slope = (y[-1] - y[0]) / (len(y) - 1)")]},
        "loses": ["test_fit_growth"],
    },
    {
        "name": "log_in_place",
        "explanation": "Takes the log in place; torch.as_tensor returns the caller's own float64 tensor, which is overwritten.",
        "edits": {"fit_growth": [("y = torch.log(torch.as_tensor(sq_norms, dtype=torch.float64))",
                                  "y = torch.as_tensor(sq_norms, dtype=torch.float64).log_()")]},
        "loses": ["test_fit_growth"],
    },
    {
        "name": "returns_a_tensor",
        "explanation": "Returns the 0-d tensor exp(-slope) instead of a Python float.",
        "edits": {"fit_growth": [("return float(torch.exp(-slope))", "return torch.exp(-slope)")]},
        "loses": ["test_fit_growth"],
    },
]
