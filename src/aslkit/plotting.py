"""Matplotlib views of landmarks: one frame as a skeleton, a sequence as an animation (GIF/MP4), data statistics."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import animation  # noqa: E402

from aslkit import constants as C  # noqa: E402

COLORS = {"left_hand": "tab:blue", "right_hand": "tab:red", "pose": "0.55", "lips": "tab:purple",
          "face": "0.8", "eyes": "tab:green"}


def _segments(frame: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Line segments ``(colour key, [n, 2, 2])`` of one frame ``[543, 3]`` (parts with NaN are skipped)."""
    out = []

    def add(key: str, pairs, offset: int) -> None:
        a = np.array([p[0] for p in pairs]) + offset
        b = np.array([p[1] for p in pairs]) + offset
        seg = np.stack([frame[a, :2], frame[b, :2]], axis=1)
        seg = seg[~np.isnan(seg).any(axis=(1, 2))]
        if len(seg):
            out.append((key, seg))

    add("pose", [p for p in C.POSE_CONNECTIONS if max(p) <= 24], C.PART_OFFSETS["pose"])
    add("left_hand", C.HAND_CONNECTIONS, C.PART_OFFSETS["left_hand"])
    add("right_hand", C.HAND_CONNECTIONS, C.PART_OFFSETS["right_hand"])
    add("lips", C.lip_connections(), 0)
    return out


def plot_frame(frame: np.ndarray, ax=None, title: str | None = None, face_points: bool = True,
               limits: tuple[float, float, float, float] | None = None):
    """Draw one frame ``[543, 3]``: face mesh points, lips, eyes, upper-body pose and both hands (image axes)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 5))
    if face_points:
        ax.scatter(frame[C.FACE, 0], frame[C.FACE, 1], s=0.5, c=COLORS["face"])
    ax.scatter(frame[C.EYES, 0], frame[C.EYES, 1], s=1.5, c=COLORS["eyes"])
    for key, seg in _segments(frame):
        for s in seg:
            ax.plot(s[:, 0], s[:, 1], c=COLORS[key], lw=1.2 if "hand" in key else 0.8)
    for part in ("left_hand", "right_hand"):
        pts = frame[C.part_range(part)]
        ax.scatter(pts[:, 0], pts[:, 1], s=4, c=COLORS[part])
    _frame_axes(ax, frame if limits is None else None, limits)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _frame_axes(ax, frame: np.ndarray | None, limits) -> None:
    if limits is None:
        limits = sequence_limits(frame[None])
    ax.set_xlim(limits[0], limits[1])
    ax.set_ylim(limits[3], limits[2])           # image y grows downwards
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def sequence_limits(seq: np.ndarray, margin: float = 0.05) -> tuple[float, float, float, float]:
    """x/y bounds (x0, x1, y0, y1) of the face, hands and upper-body pose over a sequence ``[T, 543, 3]``."""
    keep = np.concatenate([C.FACE, C.LEFT_HAND, C.RIGHT_HAND, C.flat("pose", range(0, 17))])
    xy = seq[:, keep, :2].reshape(-1, 2)
    xy = xy[~np.isnan(xy).any(1)]
    if len(xy) == 0:
        return (0.0, 1.0, 0.0, 1.0)
    lo, hi = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
    return (lo[0] - margin, hi[0] + margin, lo[1] - margin, hi[1] + margin)


def animate_sequence(seq: np.ndarray, path: str | Path | None = None, fps: int = 15, title: str = ""):
    """Animation of a sequence ``[T, 543, 3]``; saved as GIF (pillow) or MP4 (ffmpeg) when ``path`` is given."""
    fig, ax = plt.subplots(figsize=(4, 5))
    limits = sequence_limits(seq)

    def draw(t: int):
        ax.clear()
        plot_frame(seq[t], ax=ax, title=f"{title} frame {t + 1}/{len(seq)}", limits=limits)
        return []

    anim = animation.FuncAnimation(fig, draw, frames=len(seq), interval=1000 / fps, blit=False)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = animation.PillowWriter(fps=fps) if path.suffix.lower() == ".gif" else animation.FFMpegWriter(fps=fps)
        anim.save(str(path), writer=writer)
    plt.close(fig)
    return anim


def plot_frames(seqs: Sequence[np.ndarray], titles: Sequence[str], frame: str = "middle", cols: int = 4):
    """A grid of skeleton frames, one per sequence (its middle frame, or the frame with the most hand points)."""
    rows = int(np.ceil(len(seqs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.6 * rows), squeeze=False)
    for ax, seq, title in zip(axes.flat, seqs, titles):
        hands = (~np.isnan(seq[:, C.HANDS, 0])).sum(1)
        t = int(hands.argmax()) if frame == "best" else len(seq) // 2
        plot_frame(seq[t], ax=ax, title=title, limits=sequence_limits(seq))
    for ax in list(axes.flat)[len(seqs):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_distributions(stats: dict[str, np.ndarray], reference: dict[str, float] | None = None, bins: int = 40,
                       xlabel: str = "frames per sequence"):
    """Overlaid histograms of one quantity for several datasets, with vertical lines at reference values."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, values in stats.items():
        ax.hist(values, bins=bins, alpha=0.5, density=True, label=name)
    for name, v in (reference or {}).items():
        ax.axvline(v, ls="--", c="k", lw=1)
        ax.text(v, ax.get_ylim()[1] * 0.9, f" {name}", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_learning_curves(history: pd.DataFrame, path: str | Path | None = None):
    """Loss and the task's metrics per epoch (train and validation: accuracy and top-5 for asl-signs, the
    normalised Levenshtein score for fingerspelling); saved to ``path`` when given."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(history["epoch"], history["train_loss"], label="train")
    if history["val_loss"].notna().any():
        a.plot(history["epoch"], history["val_loss"], label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend()
    curves = {"train_acc": ("train", "-"), "val_acc": ("validation", "-"), "val_top5": ("validation top-5", "--"),
              "val_score": ("validation (N - D) / N", "-")}
    for col, (label, ls) in curves.items():
        if col in history and history[col].notna().any():
            b.plot(history["epoch"], history[col], label=label, ls=ls)
    b.set_xlabel("epoch"), b.set_ylabel("accuracy" if "val_acc" in history else "score")
    b.legend() if b.lines else b.set_visible(False)                        # pretraining: a loss only
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def save_learning_curves(history: pd.DataFrame, path: str | Path) -> None:
    """``plot_learning_curves`` saved to ``path`` and closed (a training run or a study keeps no figure open)."""
    plt.close(plot_learning_curves(history, path))
