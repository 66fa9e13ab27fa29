"""Skeleton plots and animations of real and synthetic sequences."""
from __future__ import annotations

import numpy as np
from PIL import Image

from aslkit.data.islr import load_relevant_data_subset
from aslkit.paths import real_islr_sample
from aslkit.plotting import animate_sequence, plot_frame, plot_frames, sequence_limits


def test_plot_real_frame(samples, tmp_path):
    x = load_relevant_data_subset(real_islr_sample())
    ax = plot_frame(x[0], title="real")
    n_lines = len(ax.lines)
    assert n_lines >= 21 + 20                  # right-hand bones plus lips (the left hand is NaN: skipped)
    ax.figure.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
    x0, x1, y0, y1 = sequence_limits(x)
    assert x0 < 0.2 and x1 > 0.6 and y0 < y1


def test_animation_to_gif(samples, tmp_path):
    x = load_relevant_data_subset(real_islr_sample())
    animate_sequence(x, tmp_path / "a.gif", fps=5)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == len(x)


def test_grid_tolerates_all_nan_hands(samples):
    x = load_relevant_data_subset(real_islr_sample())
    y = x.copy()
    y[:, :, :] = np.nan
    fig = plot_frames([x, y], ["real", "empty"], frame="best", cols=2)
    assert len(fig.axes) == 2
