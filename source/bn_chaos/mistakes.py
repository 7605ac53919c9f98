"""Typical wrong answers in bn_chaos; `course validate` checks that each loses exactly `loses`."""

MISTAKES = [
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
        "name": "pca_without_centering",
        "explanation": "Takes the SVD of the raw activations, without subtracting the mean point.",
        "edits": {"pca_project": [("H = H - H.mean(dim=0)\n", "")]},
        "loses": ["test_pca_project"],
    },
    {
        "name": "pca_smallest_directions",
        "explanation": "Projects on the directions of smallest variance (the last singular vectors).",
        "edits": {"pca_project": [("Vh[:k].T", "Vh[-k:].T")]},
        "loses": ["test_pca_project"],
    },
    {
        "name": "pca_columns_of_vh",
        "explanation": "Uses columns of Vh instead of its rows as the principal directions.",
        "edits": {"pca_project": [("H @ Vh[:k].T", "H @ Vh[:, :k]")]},
        "loses": ["test_pca_project"],
    },
    {
        "name": "norm_not_squared",
        "explanation": "Returns the gradient norms instead of their squares.",
        "edits": {"weight_grad_sq_norms": [("m.weight.grad.pow(2).sum()", "m.weight.grad.norm()")]},
        "loses": ["test_weight_grad_sq_norms"],
    },
    {
        "name": "gradients_accumulate",
        "explanation": "Never zeroes the gradients, so a second call adds to the first call's gradients.",
        "edits": {"weight_grad_sq_norms": [("model.zero_grad()\n", "")]},
        "loses": ["test_weight_grad_sq_norms"],
    },
    {
        "name": "gradients_in_eval_mode",
        "explanation": "Switches the model to eval mode, so BatchNorm uses running statistics instead of the batch's.",
        "edits": {"weight_grad_sq_norms": [("model.zero_grad()\n", "model.eval()\n    model.zero_grad()\n")]},
        "loses": ["test_weight_grad_sq_norms"],
    },
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
        "edits": {"fit_growth": [("slope = torch.linalg.lstsq(A, y[:, None]).solution[0, 0]",
                                  "slope = (y[-1] - y[0]) / (len(y) - 1)")]},
        "loses": ["test_fit_growth"],
    },
]
