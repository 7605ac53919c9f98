"""Typical wrong answers in conv_shapes; `course validate` checks each loses exactly the tests listed."""

MISTAKES = [
    {
        "name": "ignores_dilation",
        "explanation": "ignores the dilation in the output-size formula",
        "edits": {"conv_output_size": [("dilation * (kernel_size - 1)", "(kernel_size - 1)")]},
        "loses": ["test_conv_output_size_examples", "test_conv_output_size_against_torch"],
    },
    {
        "name": "forgets_plus_one",
        "explanation": "drops the final + 1 of the output-size formula",
        "edits": {"conv_output_size": [("// stride + 1", "// stride")]},
        "loses": ["test_conv_output_size_examples", "test_conv_output_size_against_torch"],
    },
    {
        "name": "true_division",
        "explanation": "divides by the stride with / and returns a float (right on the large examples, where it divides evenly)",
        "edits": {"conv_output_size": [("// stride + 1", "/ stride + 1")]},
        "loses": ["test_conv_output_size_examples", "test_conv_output_size_against_torch"],
    },
    {
        "name": "rounds_up",
        "explanation": "rounds the division up instead of down, counting a last window that does not fit",
        "edits": {"conv_output_size": [
            ("return (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1",
             "return math.ceil((n + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1")]},
        "loses": ["test_conv_output_size_examples", "test_conv_output_size_against_torch"],
    },
    {
        "name": "predicts_ceil_for_stride",
        "explanation": "predicts the strided side as 64 / 2, counting a last window that does not fit",
        "edits": {"predict_one_side": [("prediction_stride = 31", "prediction_stride = 32")]},
        "loses": ["test_prediction_stride"],
    },
    {
        "name": "predicts_without_biases",
        "explanation": "predicts the parameter count without the biases",
        "edits": {"predict_layer": [("prediction_param_count = 32 * 16 * 3 * 3 + 32", "prediction_param_count = 32 * 16 * 3 * 3")]},
        "loses": ["test_prediction_param_count"],
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
        "name": "square_kernel_count",
        "explanation": "counts a (k_h, k_w) kernel as k_h x k_h (square kernels hide it)",
        "edits": {"conv_param_count": [
            ("k_h, k_w = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size",
             "k_h = k_w = kernel_size if isinstance(kernel_size, int) else kernel_size[0]")]},
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
        "explanation": "computes the height from the width and vice versa (square images hide it)",
        "edits": {"predict_shapes": [("output_size(h, k[0]", "output_size(w, k[0]"),
                                     ("output_size(w, k[1]", "output_size(h, k[1]")]},
        "loses": ["test_predict_shapes_random_stacks"],
    },
    {
        "name": "height_settings_for_width",
        "explanation": "uses the first entry of every (height, width) setting for both sides (square settings hide it)",
        "edits": {"predict_shapes": [("output_size(w, k[1], p[1], s[1], d[1])", "output_size(w, k[0], p[0], s[0], d[0])")]},
        "loses": ["test_predict_shapes_random_stacks"],
    },
    {
        "name": "ignores_output_size",
        "explanation": "calls conv_output_size itself instead of the output_size it is given (the tests' rule is ignored)",
        "edits": {"predict_shapes": [("height = output_size(h, k[0]", "height = conv_output_size(h, k[0]"),
                                     ("width = output_size(w, k[1]", "width = conv_output_size(w, k[1]")]},
        "loses": ["test_predict_shapes_random_stacks"],
    },
    {
        "name": "pooling_without_dilation",
        "explanation": "ignores a pooling layer's dilation (the example's pooling layer has none)",
        "edits": {"predict_shapes": [("layer.stride, layer.dilation)",
                                      "layer.stride, layer.dilation if isinstance(layer, nn.Conv2d) else 1)")]},
        "loses": ["test_predict_shapes_random_stacks"],
    },
    {
        "name": "linear_flattens",
        "explanation": "gives a linear layer's output as (N, out_features), as if its input were always flat",
        "edits": {"predict_shapes": [("shape = (*shape[:-1], layer.out_features)", "shape = (shape[0], layer.out_features)")]},
        "loses": ["test_predict_shapes_random_stacks"],
    },
    {
        "name": "shapes_as_lists",
        "explanation": "returns each shape as a list where the docstring asks for tuples",
        "edits": {"predict_shapes": [("shape = (n, channels, height, width)", "shape = [n, channels, height, width]"),
                                     ("shape = (n, math.prod(rest))", "shape = [n, math.prod(rest)]"),
                                     ("shape = (*shape[:-1], layer.out_features)", "shape = [*shape[:-1], layer.out_features]")]},
        "loses": ["test_predict_shapes_example", "test_predict_shapes_random_stacks"],
    },
    {
        "name": "runs_the_layers",
        "explanation": "gets every shape by running the layer on zeros instead of predicting it",
        "edits": {"predict_shapes": [("        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):\n            n, c, h, w = shape",
                                      "        if True:\n            shape = tuple(layer(torch.zeros(shape)).shape)\n"
                                      "        elif isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):\n            n, c, h, w = shape")]},
        "loses": ["test_predict_shapes_random_stacks"],  # the rule of its own that the hidden test passes
    },
]
