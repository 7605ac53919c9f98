"""Do the plotting helpers draw what they are given and return their figure?"""

import matplotlib

matplotlib.use("Agg")

import numpy as np

from course_utils import plots


def test_running_estimates_draws_one_line_per_estimator_and_feature():
    """Are there 2 estimators x 3 features lines per panel plus one dashed truth line per feature?"""
    steps = 10
    means = {"a": np.zeros((steps, 3)), "b": np.ones((steps, 3))}
    fig, axes = plots.running_estimates(means, means, np.arange(3.0), np.ones(3))
    assert len(axes) == 2
    for ax in axes:
        assert len(ax.lines) == 2 * 3 + 3
    assert axes[0].get_ylabel() == "running mean"
