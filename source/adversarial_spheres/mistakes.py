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
        "edits": {"sample_sphere": [("torch.randn(n, d, generator=gen)", "2 * torch.rand(n, d, generator=gen) - 1")]},
        "loses": ["test_sample_sphere"],
    },
    {
        "name": "uniform_in_unit_interval",
        "explanation": "Normalizes torch.rand samples, which are all positive: every coordinate averages above 0.",
        "edits": {"sample_sphere": [("torch.randn(n, d, generator=gen)", "torch.rand(n, d, generator=gen)")]},
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
        "edits": {"sample_sphere": [("torch.randn(n, d, generator=gen)", "torch.randn(n, d)")]},
        "loses": ["test_sample_sphere"],
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
        "name": "wrong_class_sphere",
        "explanation": "Projects onto the sphere of the other class, so the adversarial points are not valid data.",
        "edits": {"project_to_sphere": [("[y]", "[1 - y]")]},
        "loses": ["test_project_to_sphere"],
    },
    {
        "name": "unit_sphere_only",
        "explanation": "Normalizes to length 1 whatever the class.",
        "edits": {"project_to_sphere": [("(target / X.norm(dim=1))", "(1 / X.norm(dim=1))")]},
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
]
