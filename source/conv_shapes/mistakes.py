"""Typical wrong answers in conv_shapes; `course validate` checks each loses exactly the tests listed."""

MISTAKES = [
    {
        "name": "ignores_dilation",
        "explanation": "ignores the dilation in the output-size formula (the visible examples still pass)",
        "edits": {"conv_output_size": [("dilation * (kernel_size - 1)", "(kernel_size - 1)")]},
        "loses": ["test_conv_output_size_against_torch", "test_predict_shapes_example",
                  "test_predict_shapes_random_stacks"],
    },
    {
        "name": "forgets_plus_one",
        "explanation": "drops the final + 1 of the output-size formula",
        "edits": {"conv_output_size": [("// stride + 1", "// stride")]},
        "loses": ["test_conv_output_size_examples", "test_conv_output_size_against_torch",
                  "test_predict_shapes_example", "test_predict_shapes_random_stacks"],
    },
    {
        "name": "forgets_bias",
        "explanation": "counts the weights but not the biases",
        "edits": {"conv_param_count": [(" + (out_channels if bias else 0)", "")]},
        "loses": ["test_conv_param_count_example", "test_conv_param_count_against_torch"],
    },
    {
        "name": "ignores_bias_flag",
        "explanation": "always counts the biases, even with bias=False",
        "edits": {"conv_param_count": [("(out_channels if bias else 0)", "out_channels")]},
        "loses": ["test_conv_param_count_against_torch"],
    },
    {
        "name": "conv_keeps_channels",
        "explanation": "lets a convolution keep its input's channel count",
        "edits": {"predict_shapes": [("layer.out_channels if isinstance(layer, nn.Conv2d) else c", "c")]},
        "loses": ["test_predict_shapes_example", "test_predict_shapes_random_stacks"],
    },
    {
        "name": "swaps_height_and_width",
        "explanation": "computes the height from the width's settings and vice versa (square images hide it)",
        "edits": {"predict_shapes": [("enumerate((h, w))", "enumerate((w, h))")]},
        "loses": ["test_predict_shapes_random_stacks"],
    },
]
