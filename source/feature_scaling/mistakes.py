"""Typical wrong answers in feature_scaling; `course validate` checks that each loses exactly `loses`."""

GRAD = "residual = X @ w + b - y  # (n,)\n    return X.T @ residual / len(X), residual.mean()"
HESSIAN_ONES = "A = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1) if intercept else X"
CENTERING = "w = torch.linalg.solve(X_c.T @ X_c, X_c.T @ y_c)\n    return w, y_mean - x_mean @ w"
STANDARDIZE = "return (X - mean) / std, mean, std"

MISTAKES = [
    {
        "name": "grad_sum_not_mean",
        "explanation": "Sums the per-example gradients instead of averaging them: the gradient of n times the loss.",
        "edits": {"least_squares_grad": [(GRAD, "residual = X @ w + b - y\n    return X.T @ residual, residual.sum()")]},
        "loses": ["test_least_squares_grad"],
    },
    {
        "name": "grad_wrong_sign",
        "explanation": "Writes the residual as y - (X w + b), which flips the gradient: the direction of ascent.",
        "edits": {"least_squares_grad": [(GRAD, "residual = y - X @ w - b\n    return X.T @ residual / len(X), residual.mean()")]},
        "loses": ["test_least_squares_grad"],
    },
    {
        "name": "grad_by_autograd",
        "explanation": "Lets autograd differentiate instead of deriving the gradient (and returns tensors that came out of a graph).",
        "edits": {"least_squares_grad": [(GRAD, "w, b = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()\n"
                                                "    (0.5 * ((X @ w + b - y) ** 2).mean()).backward()\n"
                                                "    return w.grad, b.grad")]},
        "loses": ["test_least_squares_grad"],
    },
    {
        "name": "grad_returns_float64",
        "explanation": "Computes in float64 for accuracy and returns float64 gradients for float32 inputs.",
        "edits": {"least_squares_grad": [(GRAD, "residual = X.double() @ w.double() + b.double() - y.double()\n"
                                                "    return X.double().T @ residual / len(X), residual.mean()")]},
        "loses": ["test_least_squares_grad"],
    },
    {
        "name": "grad_intercept_forgotten",
        "explanation": "Leaves b out of the residual, so both gradients are those of the model without intercept.",
        "edits": {"least_squares_grad": [(GRAD, "residual = X @ w - y\n    return X.T @ residual / len(X), residual.mean()")]},
        "loses": ["test_least_squares_grad"],
    },
    {
        "name": "hessian_not_averaged",
        "explanation": "Forgets the 1/n: the Hessian of the summed loss, n times too large, so the predicted step is n times too small.",
        "edits": {"hessian": [("return A.T @ A / len(X)", "return A.T @ A")]},
        "loses": ["test_hessian", "test_prediction_raw_lr"],
    },
    {
        "name": "hessian_ignores_intercept_flag",
        "explanation": "Always appends the column of ones: intercept=False is never honoured.",
        "edits": {"hessian": [(HESSIAN_ONES, "A = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1)")]},
        "loses": ["test_hessian"],
    },
    {
        "name": "hessian_outer_product_of_rows",
        "explanation": "Writes A @ A.T: an n x n matrix of inner products between examples instead of d x d between features.",
        "edits": {"hessian": [("return A.T @ A / len(X)", "return A @ A.T / len(X)")]},
        "loses": ["test_hessian"],
    },
    {
        "name": "raw_lr_one_over_L",
        "explanation": "Predicts 1/L, the step that removes the top direction's error in one step, not the largest stable one.",
        "edits": {"prediction_raw_lr": [("prediction_raw_lr = 2 / torch", "prediction_raw_lr = 1 / torch")]},
        "loses": ["test_prediction_raw_lr"],
    },
    {
        "name": "raw_lr_units_as_recorded",
        "explanation": "Computes the limit of the data as recorded (s1 in mg/dL), the value the run measures, not the one asked for.",
        "edits": {"prediction_raw_lr": [("hessian(X_raw / s1_in_mmol, intercept=True)", "hessian(X_raw, intercept=True)")]},
        "loses": ["test_prediction_raw_lr"],
    },
    {
        "name": "raw_lr_smallest_eigenvalue",
        "explanation": "Uses the smallest eigenvalue instead of the largest: a step that blows up every other direction.",
        "edits": {"prediction_raw_lr": [(".max().item()", ".min().item()")]},
        "loses": ["test_prediction_raw_lr"],
    },
    {
        "name": "centering_intercept_is_mean_y",
        "explanation": "Takes b = mean(y), forgetting that the features' means shift the intercept by - mean(X) @ w.",
        "edits": {"fit_by_centering": [(CENTERING, "w = torch.linalg.solve(X_c.T @ X_c, X_c.T @ y_c)\n    return w, y_mean")]},
        "loses": ["test_fit_by_centering"],
    },
    {
        "name": "centering_w_from_raw_data",
        "explanation": "Solves the normal equations of the raw data (no intercept) for w, then recovers b from the centering formula.",
        "edits": {"fit_by_centering": [(CENTERING, "w = torch.linalg.solve(X.T @ X, X.T @ y)\n    return w, y_mean - x_mean @ w")]},
        "loses": ["test_fit_by_centering"],
    },
    {
        "name": "centering_returns_list",
        "explanation": "Returns [w, b], a list, where the docstring promises a tuple.",
        "edits": {"fit_by_centering": [(CENTERING, "w = torch.linalg.solve(X_c.T @ X_c, X_c.T @ y_c)\n    return [w, y_mean - x_mean @ w]")]},
        "loses": ["test_fit_by_centering"],
    },
    {
        "name": "centering_in_place",
        "explanation": "Centers the caller's tensors in place (an alias, then -=), which changes the data the caller keeps using.",
        "edits": {"fit_by_centering": [("X_c, y_c = X - x_mean, y - y_mean",
                                       "X_c, y_c = X, y\n"
                                       "    X_c -= x_mean\n    y_c -= y_mean")]},
        "loses": ["test_fit_by_centering"],
    },
    {
        "name": "intercept_factor_eta_squared",
        "explanation": "Predicts 1 - lr**2 for the intercept's factor, as if the curvature were lr.",
        "edits": {"predicted_intercept_factor": [("return 1 - lr", "return 1 - lr**2")]},
        "loses": ["test_predicted_intercept_factor"],
    },
    {
        "name": "standardize_unbiased_std",
        "explanation": "Divides by the unbiased standard deviation (n - 1), so the columns' mean square is (n - 1)/n, not 1.",
        "edits": {"standardize": [("std = X.std(dim=0, correction=0)", "std = X.std(dim=0)")]},
        "loses": ["test_standardize"],
    },
    {
        "name": "standardize_over_rows",
        "explanation": "Takes the statistics of each example (dim=1) instead of each feature.",
        "edits": {"standardize": [("mean = X.mean(dim=0)", "mean = X.mean(dim=1, keepdim=True)"),
                                  ("std = X.std(dim=0, correction=0)", "std = X.std(dim=1, correction=0, keepdim=True)")]},
        "loses": ["test_standardize"],
    },
    {
        "name": "standardize_in_place",
        "explanation": "Standardizes the caller's tensor in place and returns it: the raw data the notebook keeps using is gone.",
        "edits": {"standardize": [(STANDARDIZE, "X -= mean\n    X /= std\n    return X, mean, std")]},
        "loses": ["test_standardize"],
    },
    {
        "name": "standardize_keepdim_statistics",
        "explanation": "Returns the mean and standard deviation with keepdim=True, shape (1, d) instead of (d,).",
        "edits": {"standardize": [(STANDARDIZE, "return (X - mean) / std, mean[None], std[None]")]},
        "loses": ["test_standardize"],
    },
    {
        "name": "standardize_constant_column_silent",
        "explanation": "Never checks for a constant column, so it silently returns NaN (0/0) there instead of raising.",
        "edits": {"standardize": [('raise ValueError("a constant column cannot be standardized")', "pass")]},
        "loses": ["test_standardize"],
    },
    {
        "name": "safe_lr_one_over_d",
        "explanation": "Predicts 1/d: stable on every standardized dataset, but not the largest such rate.",
        "edits": {"predicted_safe_lr": [("return 2 / d", "return 1 / d")]},
        "loses": ["test_predicted_safe_lr"],
    },
    {
        "name": "safe_lr_ignores_d",
        "explanation": "Predicts 2, as if standardizing made L equal 1 whatever the correlations between features.",
        "edits": {"predicted_safe_lr": [("return 2 / d", "return 2.0")]},
        "loses": ["test_predicted_safe_lr"],
    },
    {
        "name": "L_ratio_linear_in_c",
        "explanation": "Predicts that L scales like c: forgets that the Hessian is quadratic in the features.",
        "edits": {"predicted_L_ratio": [("return 1.0 if batchnorm else c**2", "return 1.0 if batchnorm else c")]},
        "loses": ["test_predicted_L_ratio"],
    },
    {
        "name": "L_ratio_ignores_batchnorm",
        "explanation": "Predicts c^2 with BatchNorm too, missing that standardizing removes any scale.",
        "edits": {"predicted_L_ratio": [("return 1.0 if batchnorm else c**2", "return c**2")]},
        "loses": ["test_predicted_L_ratio"],
    },
]
