"""Typical wrong answers for adversarial_spheres; `course validate` checks each loses exactly `loses`."""

MISTAKES = [
    {
        "name": "divide_by_sqrt_d",
        "explanation": "Divides the Gaussian vectors by sqrt(d) instead of their norm: lengths are only about right.",
        "edits": {"sample_sphere": [("Z.norm(dim=1, keepdim=True)", "d ** 0.5")]},
        "loses": ["test_sample_sphere"],
    },
    {
        "name": "cube_then_normalize",
        "explanation": "Samples uniformly in the cube [-1, 1]^d and normalizes: directions pile up towards the corners.",
        "edits": {"sample_sphere": [("torch.randn(n, d, generator=gen, dtype=dtype)",
                                     "2 * torch.rand(n, d, generator=gen, dtype=dtype) - 1")]},
        "loses": ["test_sample_sphere"],
    },
    {
        "name": "radius_ignored",
        "explanation": "Returns unit vectors whatever the requested radius.",
        "edits": {"sample_sphere": [("return radius * Z", "return Z")]},
        "loses": ["test_sample_sphere"],
    },
    {
        "name": "unseeded_sampler",
        "explanation": "Draws from the global generator, so the seed has no effect.",
        "edits": {"sample_sphere": [("torch.randn(n, d, generator=gen, dtype=dtype)", "torch.randn(n, d, dtype=dtype)")]},
        "loses": ["test_sample_sphere"],
    },
    {
        "name": "reseeds_the_global_generator",
        "explanation": "Seeds the global generator with torch.manual_seed(seed) and draws from it: the points repeat, but "
                       "every later random draw of the notebook is reset.",
        "edits": {"sample_sphere": [("gen = torch.Generator().manual_seed(seed)", "torch.manual_seed(seed)"),
                                    ("torch.randn(n, d, generator=gen, dtype=dtype)", "torch.randn(n, d, dtype=dtype)")]},
        "loses": ["test_sample_sphere"],
    },
    {
        "name": "sampler_ignores_dtype",
        "explanation": "Always samples in float32, whatever dtype was asked for.",
        "edits": {"sample_sphere": [("torch.randn(n, d, generator=gen, dtype=dtype)", "torch.randn(n, d, generator=gen)")]},
        "loses": ["test_sample_sphere"],
    },
    {
        "name": "band_share_of_3d",
        "explanation": "Predicts the band's share from 3-D intuition (uniform heights): 0.1.",
        "edits": {"prediction_band_share": [("prediction_band_share = math.erf(0.1 * math.sqrt(200 / 2))",
                                             "prediction_band_share = 0.1")]},
        "loses": ["test_prediction_band_share"],
    },
    {
        "name": "band_share_erf_without_sqrt2",
        "explanation": "Takes P(|Z| <= a) for erf(a) instead of erf(a / sqrt(2)).",
        "edits": {"prediction_band_share": [("math.sqrt(200 / 2)", "math.sqrt(200)")]},
        "loses": ["test_prediction_band_share"],
    },
    {
        "name": "batch_normalized_gradient",
        "explanation": "Divides the gradient by the norm of the whole batch: examples move by different amounts.",
        "edits": {"l2_step": [("grad.norm(dim=1, keepdim=True)", "grad.norm()")]},
        "loses": ["test_l2_step"],
    },
    {
        "name": "sign_gradient",
        "explanation": "Uses the sign of the gradient (the L-infinity FGSM step): the L2 length is sqrt(d) * step_size.",
        "edits": {"l2_step": [("grad / norms", "grad.sign()")]},
        "loses": ["test_l2_step"],
    },
    {
        "name": "descends_the_loss",
        "explanation": "Steps against the gradient, making the model more confident instead of attacking it.",
        "edits": {"l2_step": [("X + step_size", "X - step_size")]},
        "loses": ["test_l2_step"],
    },
    {
        "name": "zero_gradient_nan",
        "explanation": "Divides by the gradient norm without a floor: a zero gradient gives NaN.",
        "edits": {"l2_step": [(".clamp_min(1e-12)", "")]},
        "loses": ["test_l2_step"],
    },
    {
        "name": "normalizes_grad_in_place",
        "explanation": "Normalizes the caller's gradient in place (grad /= ...) to save memory.",
        "edits": {"l2_step": [("    norms = grad.norm(dim=1, keepdim=True).clamp_min(1e-12)\n    return X + step_size * grad / norms",
                               "    grad /= grad.norm(dim=1, keepdim=True).clamp_min(1e-12)\n    return X + step_size * grad")]},
        "loses": ["test_l2_step"],
    },
    {
        "name": "wrong_class_sphere",
        "explanation": "Projects onto the sphere of the other class, so the adversarial points are not valid data.",
        "edits": {"project_to_sphere": [("[y]", "[1 - y]")]},
        "loses": ["test_project_to_sphere"],
    },
    {
        "name": "norm_over_the_batch",
        "explanation": "Takes each column's norm over the batch (dim=0) instead of each point's norm.",
        "edits": {"project_to_sphere": [("return X * (target / X.norm(dim=1)).unsqueeze(1)",
                                         "return X / X.norm(dim=0) * target.unsqueeze(1)")]},
        "loses": ["test_project_to_sphere"],
    },
    {
        "name": "projects_in_place",
        "explanation": "Rescales the caller's points in place (X *= ...) and returns them.",
        "edits": {"project_to_sphere": [("return X * (target / X.norm(dim=1)).unsqueeze(1)",
                                         "X *= (target / X.norm(dim=1)).unsqueeze(1)\n    return X")]},
        "loses": ["test_project_to_sphere"],
    },
    {
        "name": "attack_in_training_mode",
        "explanation": "Never switches the model to eval mode: BatchNorm normalizes with the attacked batch's statistics "
                       "and overwrites its running statistics at every step.",
        "edits": {"sphere_attack": [("    model.eval()\n", "")]},
        "loses": ["test_sphere_attack_leaves_model"],
    },
    {
        "name": "attack_forgets_the_mode",
        "explanation": "Switches the model to eval mode and leaves it there.",
        "edits": {"sphere_attack": [("        model.train(was_training)", "        pass")]},
        "loses": ["test_sphere_attack_leaves_model"],
    },
    {
        "name": "attack_with_backward",
        "explanation": "Calls .backward() and reads X_t.grad: every parameter's .grad fills up along the way.",
        "edits": {"sphere_attack": [("(grad,) = torch.autograd.grad(loss_fn(logits, y).sum(), X_t)",
                                     "loss_fn(logits, y).sum().backward()\n            grad = X_t.grad")]},
        "loses": ["test_sphere_attack_leaves_model"],
    },
    {
        "name": "attack_keeps_the_graph",
        "explanation": "Takes the step with gradients on and never detaches: the returned path drags an autograd graph.",
        "edits": {"sphere_attack": [("            with torch.no_grad():\n                X_t = project_fn(step_fn(X_t, grad, step_size), y, radii)",
                                     "            X_t = project_fn(step_fn(X_t, grad, step_size), y, radii)")]},
        "loses": ["test_sphere_attack_leaves_model"],
    },
    {
        "name": "attack_moves_the_input",
        "explanation": "Attacks the caller's tensor itself, updating it in place with copy_: the test points move.",
        "edits": {"sphere_attack": [("        X_t = X.detach()\n        path, wrong = [X_t], []",
                                     "        X_t = X\n        path, wrong = [X.detach().clone()], []"),
                                    ("            with torch.no_grad():\n                X_t = project_fn(step_fn(X_t, grad, step_size), y, radii)\n            path.append(X_t)",
                                     "            with torch.no_grad():\n                X.copy_(project_fn(step_fn(X_t, grad, step_size), y, radii))\n"
                                     "            X_t = X\n            path.append(X.detach().clone())")]},
        "loses": ["test_sphere_attack_leaves_model"],
    },
    {
        "name": "attack_ignores_step_fn",
        "explanation": "Calls l2_step directly instead of the step_fn it was given (the default only looks right).",
        "edits": {"sphere_attack": [("X_t = project_fn(step_fn(X_t, grad, step_size), y, radii)",
                                     "X_t = project_fn(l2_step(X_t, grad, step_size), y, radii)")]},
        "loses": ["test_sphere_attack"],
    },
    {
        "name": "attack_erases_gradients",
        "explanation": "Calls .backward() for the points' gradient, then model.zero_grad() to clean up: the gradients an "
                       "earlier backward pass left on the parameters are gone.",
        "edits": {"sphere_attack": [("(grad,) = torch.autograd.grad(loss_fn(logits, y).sum(), X_t)",
                                     "loss_fn(logits, y).sum().backward()\n            grad = X_t.grad\n            model.zero_grad()")]},
        "loses": ["test_sphere_attack_leaves_model"],
    },
    {
        "name": "mode_not_restored_on_error",
        "explanation": "Gives the model back its mode after the loop, but not when the forward pass raises.",
        "edits": {"sphere_attack": [("    try:\n        X_t = X.detach()", "    if True:\n        X_t = X.detach()"),
                                    ("    finally:\n        model.train(was_training)", "    model.train(was_training)")]},
        "loses": ["test_sphere_attack_leaves_model"],
    },
    {
        "name": "ignores_the_mask",
        "explanation": "Takes the nearest iterate whether or not it is misclassified (the clean point itself, at 0).",
        "edits": {"nearest_error_distance": [("dist.masked_fill(~wrong, float(\"inf\"))", "dist")]},
        "loses": ["test_nearest_error_distance"],
    },
    {
        "name": "first_error",
        "explanation": "Takes the first misclassified iterate rather than the closest one.",
        "edits": {"nearest_error_distance": [(
            "return dist.masked_fill(~wrong, float(\"inf\")).min(dim=0).values",
            "first = wrong.int().argmax(dim=0)\n"
            "    return torch.where(wrong.any(dim=0), dist.gather(0, first.unsqueeze(0)).squeeze(0), float(\"inf\"))")]},
        "loses": ["test_nearest_error_distance"],
    },
    {
        "name": "squared_distance",
        "explanation": "Returns squared distances.",
        "edits": {"nearest_error_distance": [(".norm(dim=2)", ".pow(2).sum(dim=2)")]},
        "loses": ["test_nearest_error_distance"],
    },
    {
        "name": "distances_in_float64",
        "explanation": "Computes the distances in float64 for accuracy and returns float64 for float32 inputs.",
        "edits": {"nearest_error_distance": [("dist = (X_path - X.unsqueeze(0)).norm(dim=2)",
                                              "dist = (X_path.double() - X.double().unsqueeze(0)).norm(dim=2)")]},
        "loses": ["test_nearest_error_distance"],
    },
    {
        "name": "path_shifted_in_place",
        "explanation": "Subtracts X from the caller's path in place to save memory.",
        "edits": {"nearest_error_distance": [("dist = (X_path - X.unsqueeze(0)).norm(dim=2)",
                                              "X_path -= X.unsqueeze(0)\n    dist = X_path.norm(dim=2)")]},
        "loses": ["test_nearest_error_distance"],
    },
    {
        "name": "norm_ratio_not_squared",
        "explanation": "Gives the ratio of the norms, 1.5, where the ratio of the squared norms is asked.",
        "edits": {"prediction_norm_ratio_plain": [("prediction_sq_ratio_plain = 1.5**2", "prediction_sq_ratio_plain = 1.5")]},
        "loses": ["test_prediction_norm_ratio_plain"],
    },
    {
        "name": "ratio_compounded_per_layer",
        "explanation": "Lets every layer multiply by the input's factor again: 2.25 ** 50.",
        "edits": {"prediction_norm_ratio_plain": [("prediction_sq_ratio_plain = 1.5**2", "prediction_sq_ratio_plain = 1.5**(2 * 50)")]},
        "loses": ["test_prediction_norm_ratio_plain"],
    },
    {
        "name": "mean_square_before_relu",
        "explanation": "Forgets that the ReLU zeroes half of each unit's values: one per unit, 72.",
        "edits": {"prediction_bn_mean_square": [("prediction_bn_mean_square = 72 / 2", "prediction_bn_mean_square = 72")]},
        "loses": ["test_prediction_bn_mean_square"],
    },
    {
        "name": "path_flattened_with_view",
        "explanation": "Flattens the path with .view to take all distances at once: fails on a non-contiguous path, "
                       "which torch's own operations accept.",
        "edits": {"nearest_error_distance": [("dist = (X_path - X.unsqueeze(0)).norm(dim=2)",
                                              "dist = (X_path.view(-1, X.shape[1]) - X.repeat(len(X_path), 1)).norm(dim=1).view(wrong.shape)")]},
        "loses": ["test_nearest_error_distance"],
    },
    {
        "name": "hooks_on_top_level_only",
        "explanation": "Registers hooks on the model's direct children only: layers inside nested containers are missed.",
        "edits": {"activation_norms": [("for module in model.modules() if isinstance(module, layer_type)",
                                        "for module in model.children() if isinstance(module, layer_type)")]},
        "loses": ["test_activation_norms"],
    },
    {
        "name": "norm_over_channels_only",
        "explanation": "Takes the norm over dim=1 alone: right for flat outputs, but a convolutional output's norm is over "
                       "all its channels and positions.",
        "edits": {"activation_norms": [("output.flatten(1).norm(dim=1)", "output.norm(dim=1)")]},
        "loses": ["test_activation_norms"],
    },
    {
        "name": "model_run_twice",
        "explanation": "Runs the model once more without hooks to check the input fits: in training mode the extra pass "
                       "moves BatchNorm's running statistics.",
        "edits": {"activation_norms": [("    norms = []\n", "    with torch.no_grad():\n        model(X)  # fail early on a bad input\n    norms = []\n")]},
        "loses": ["test_activation_norms"],
    },
    {
        "name": "hooks_left_on_error",
        "explanation": "Removes the hooks after the forward pass, but not when it raises: they keep firing later.",
        "edits": {"activation_norms": [("    try:\n        with torch.no_grad():\n            model(X)\n    finally:\n"
                                        "        for hook in hooks:\n            hook.remove()",
                                        "    with torch.no_grad():\n        model(X)\n    for hook in hooks:\n        hook.remove()")]},
        "loses": ["test_activation_norms_cleanup"],
    },
    {
        "name": "norms_with_graph",
        "explanation": "Runs the forward pass with gradients on: the returned norms drag the model's autograd graph.",
        "edits": {"activation_norms": [("        with torch.no_grad():\n            model(X)", "        model(X)")]},
        "loses": ["test_activation_norms_cleanup"],
    },
    {
        "name": "norms_in_eval_mode",
        "explanation": "Switches the model to eval mode to measure it: BatchNorm then uses running statistics, and the "
                       "model is left in eval mode.",
        "edits": {"activation_norms": [("    try:\n", "    model.eval()\n    try:\n")]},
        "loses": ["test_activation_norms"],
    },
    {
        "name": "norms_over_the_batch",
        "explanation": "Takes each unit's norm over the batch (dim=0) instead of each example's norm.",
        "edits": {"activation_norms": [("output.flatten(1).norm(dim=1)", "output.norm(dim=0)")]},
        "loses": ["test_activation_norms"],
    },
    {
        "name": "error_rate_without_concentration",
        "explanation": "Predicts 1 - 0.99 = 0.01: as if errors could not lie near other points, ignoring the "
                       "eps-neighbourhood of the error set.",
        "edits": {"prediction_error_rate_for_99": [
            ("prediction_error_rate_for_99 = 1 - NormalDist().cdf(NormalDist().inv_cdf(0.99) + 0.1 * math.sqrt(30))",
             "prediction_error_rate_for_99 = 1 - 0.99")]},
        "loses": ["test_prediction_error_rate_for_99"],
    },
    {
        "name": "error_rate_eps_unscaled",
        "explanation": "Shifts the Gaussian quantile by eps instead of eps sqrt(d): heights are of size 1/sqrt(d).",
        "edits": {"prediction_error_rate_for_99": [("0.1 * math.sqrt(30)", "0.1")]},
        "loses": ["test_prediction_error_rate_for_99"],
    },
    {
        "name": "error_rate_in_percent",
        "explanation": "Gives the error rate in percent instead of as a share.",
        "edits": {"prediction_error_rate_for_99": [("prediction_error_rate_for_99 = 1 - NormalDist()",
                                                    "prediction_error_rate_for_99 = 100 - 100 * NormalDist()")]},
        "loses": ["test_prediction_error_rate_for_99"],
    },
]
