"""Skeleton plots and animations of real and synthetic sequences."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from aslkit.data.islr import load_relevant_data_subset
from aslkit.paths import real_islr_sample
from aslkit.plotting import animate_sequence, plot_frame, plot_frames, save_learning_curves, sequence_limits


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


def test_saved_learning_curves_leave_no_figure_open(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.4, 2.2],
                            "train_acc": [0.1, 0.3, 0.5], "val_acc": [0.1, 0.2, 0.3], "val_top5": [0.3, 0.5, 0.6]})
    before = plt.get_fignums()
    for k in range(3):
        save_learning_curves(history, tmp_path / f"curves{k}.png")
    assert plt.get_fignums() == before
    assert Image.open(tmp_path / "curves2.png").size[0] > 100
