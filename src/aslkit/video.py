"""Video -> MediaPipe Holistic landmarks ``[T, 543, 3]`` in the competitions' landmark order (face 468, left hand 21,
pose 33, right hand 21; x and y normalised by the image width and height, z as MediaPipe gives it; NaN for a part
that is not detected in a frame): the solution that made the competitions' data.

The optional ``video`` extra (``pip install -e .[video]``: MediaPipe, whose models ship inside the wheel, and
OpenCV's video reader); everything else in the kit works without it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from aslkit import constants as C
from aslkit.data.errors import DataError

# The Holistic result attribute of each part, in the order of constants.PARTS.
RESULT_OF_PART = {"face": "face_landmarks", "left_hand": "left_hand_landmarks", "pose": "pose_landmarks",
                  "right_hand": "right_hand_landmarks"}


class MissingExtra(ImportError):
    """An optional extra of the kit is not installed; the message says which and how to install it."""


def require_extra(module: str) -> Any:
    """Import ``module`` of the video extra, or MissingExtra saying how to install it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(f"the video extra is not installed ({module}: {e}); install it with "
                           f"pip install -e .[video] (pins: requirements-video.txt)") from e


def frame_landmarks(result: Any) -> np.ndarray:
    """One Holistic result as ``[543, 3]`` float32 in the competitions' order, NaN for parts it did not detect."""
    out = np.full((C.ROWS_PER_FRAME, 3), np.nan, np.float32)
    for part, attr in RESULT_OF_PART.items():
        found = getattr(result, attr)
        if found is None:
            continue
        points = np.array([(p.x, p.y, p.z) for p in found.landmark], np.float32)
        out[C.part_range(part)] = points[: C.PART_SIZES[part]]
    return out


def video_frames(video: str | Path | None = None, camera: int | None = None, max_frames: int = 0
                 ) -> Iterator[np.ndarray]:
    """RGB frames of a video file (or of camera ``camera``), at most ``max_frames`` (0: all); DataError naming the
    file when OpenCV cannot open it."""
    cv2 = require_extra("cv2")
    source = camera if video is None else str(video)
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise DataError(video if video is not None else f"camera {camera}", "cannot open the video (OpenCV)")
    try:
        n = 0
        while not max_frames or n < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            n += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def holistic_landmarks(frames: Iterable[np.ndarray], model_complexity: int = 1) -> np.ndarray:
    """MediaPipe Holistic over RGB frames in video mode (tracking from frame to frame): ``[T, 543, 3]`` float32."""
    mp = require_extra("mediapipe")
    rows = []
    with mp.solutions.holistic.Holistic(static_image_mode=False, model_complexity=model_complexity,
                                        refine_face_landmarks=False) as holistic:
        for frame in frames:
            rows.append(frame_landmarks(holistic.process(np.ascontiguousarray(frame))))
    return np.stack(rows) if rows else np.zeros((0, C.ROWS_PER_FRAME, 3), np.float32)
