"""The transformer family's augmentation (the I2-T recipe of the 2nd-place solution), built from the shared
``aslkit.transforms``. ``default_signs_augment(AugmentConfig())`` builds the I2-T pipeline:

* ``aug2``: ``RandomAffine`` (scale 0.8-1.5, shift +-0.1, rotation +-15 deg, p=0.8), then ``RandomTimeInterpolation``
  (length x0.8-1.5, offset +-0.5 frame, p=0.3);
* ``random_hand_op_h4``: ``FingerTreeRotation`` of both hands (each finger tree with p=0.15, +-4 deg in the x,y
  plane, p=0.9);
* ``PartMirror`` of the lips (p=0.5): I2-T's "mirror flip" flips the lips only. A whole-frame flip would do
  nothing here: the features mirror every frame to the dominant hand's side, which undoes it.

Differences from the I2-T code, on purpose: rotation and scaling are about the sequence centre (I2-T: the image
origin), the shift moves x and y only, and time interpolation clamps to the sequence instead of extrapolating.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aslkit import constants as C
from aslkit.transforms import (
    Compose,
    FingerTreeRotation,
    PartMirror,
    RandomAffine,
    RandomTimeInterpolation,
    SubsetLayout,
)


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the asl-signs training augmentations (defaults: I2-T ``aug2`` + ``h4`` + lip mirror).

    ``part_affine_*`` is the per-part (each hand, face, pose) affine; off by default as in I2-T. Shear ``(0, 0)``
    is no shear (I2-T has none).
    """

    affine_p: float = 0.8
    affine_scale: tuple[float, float] = (0.8, 1.5)
    affine_shift: tuple[float, float] = (-0.1, 0.1)
    affine_degree: tuple[float, float] = (-15.0, 15.0)
    affine_shear: tuple[float, float] = (0.0, 0.0)
    part_affine_p: float = 0.0
    part_affine_scale: tuple[float, float] = (0.9, 1.1)
    part_affine_shift: tuple[float, float] = (-0.05, 0.05)
    part_affine_degree: tuple[float, float] = (-10.0, 10.0)
    part_affine_shear: tuple[float, float] = (0.0, 0.0)
    interp_p: float = 0.3
    interp_scale: tuple[float, float] = (0.8, 1.5)
    interp_shift: tuple[float, float] = (-0.5, 0.5)
    finger_p: float = 0.9
    finger_joint_p: float = 0.15
    finger_degree: tuple[float, float] = (-4.0, 4.0)
    lip_flip_p: float = 0.5


def default_signs_augment(cfg: AugmentConfig | None = None, subset: np.ndarray | None = None) -> Compose:
    """The I2-T training augmentation: global affine, per-part affine, time interpolation, finger-tree rotation,
    lip mirror (in that order), for sequences of ``subset`` (default: the ``islr`` cache subset)."""
    cfg = cfg or AugmentConfig()
    subset = np.asarray(C.CACHE_SUBSETS["islr"] if subset is None else subset)
    layout = SubsetLayout.of(subset)
    return Compose([
        RandomAffine(cfg.affine_p, cfg.affine_scale, cfg.affine_shift, cfg.affine_degree, cfg.affine_shear),
        RandomAffine(cfg.part_affine_p, cfg.part_affine_scale, cfg.part_affine_shift, cfg.part_affine_degree,
                     cfg.part_affine_shear, groups=layout.parts()),
        RandomTimeInterpolation(cfg.interp_p, cfg.interp_scale, cfg.interp_shift),
        FingerTreeRotation(cfg.finger_p, cfg.finger_joint_p, cfg.finger_degree, layout=layout),
        PartMirror(cfg.lip_flip_p, C.subset_positions(subset, C.LIPS), layout=layout),
    ])
