"""Plotting helpers for the labs; each returns its figure and axes and never calls `plt.show()`."""

from __future__ import annotations

import matplotlib.pyplot as plt
