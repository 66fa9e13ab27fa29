"""Lets ``import torchvision`` (and so ``import timm``) work with a torchvision wheel whose C++ ops cannot load.

PyPI's torchvision for torch 2.13 is a CUDA build. On a CPU-only torch its ``_C`` extension fails to load, which
torchvision tolerates, but ``torchvision/_meta_registrations.py`` then registers fake kernels for
``torchvision::nms`` without a guard and raises ``RuntimeError: operator torchvision::nms does not exist``.

``install()`` adds a one-shot import hook: on the first ``import torchvision`` it tries to load the real ``_C``
library; only when that fails does it define the two missing operator schemas (``nms``, ``qnms``), so that the import
succeeds. torchvision's C++ ops themselves (nms, roi_align, ...) stay unavailable and raise torchvision's own error.
Where torchvision works (a matching CPU or CUDA build), the hook changes nothing.

This file has no dependency on the rest of the kit: the setup script copies it into the virtual environment with a
``.pth`` file so that it is active in every interpreter of the venv.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

_LIBRARIES: list = []          # keeps the torch.library.Library objects alive
STATE = {"installed": False, "patched": False, "reason": ""}


def _define_missing_ops(package_dir: Path) -> None:
    import torch

    for so in sorted(package_dir.glob("_C*.so")) + sorted(package_dir.glob("_C*.pyd")):
        try:
            torch.ops.load_library(str(so))
            STATE["reason"] = f"loaded {so.name}"
            return
        except (OSError, RuntimeError) as e:
            STATE["reason"] = f"{so.name} failed to load: {e}"
    try:
        torch.ops.torchvision.nms.default  # noqa: B018  (already defined by someone else)
        return
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARIES.append(lib)
    STATE["patched"] = True


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    """Fires once, before torchvision's own modules run, then gets out of the way."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TorchvisionFinder)]
        spec = importlib.util.find_spec("torchvision")
        if spec is not None and spec.origin:
            try:
                _define_missing_ops(Path(spec.origin).parent)
            except Exception as e:  # never break the import because of the shim
                STATE["reason"] = f"shim error: {type(e).__name__}: {e}"
        return None


def install() -> None:
    """Register the hook (idempotent; does nothing if torchvision was already imported)."""
    if STATE["installed"] or "torchvision" in sys.modules:
        return
    if not any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionFinder())
    STATE["installed"] = True
