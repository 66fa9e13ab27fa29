"""Validation reports and plots (``aslkit validate``)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_learning_curves(history: pd.DataFrame, path: str | Path | None = None):
    """Loss and accuracy per epoch (train and validation); saved to ``path`` when given."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(history["epoch"], history["train_loss"], label="train")
    if history["val_loss"].notna().any():
        a.plot(history["epoch"], history["val_loss"], label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend()
    b.plot(history["epoch"], history["train_acc"], label="train")
    if history["val_acc"].notna().any():
        b.plot(history["epoch"], history["val_acc"], label="validation")
        b.plot(history["epoch"], history["val_top5"], label="validation top-5", ls="--")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.legend()
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig
