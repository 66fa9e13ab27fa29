"""aslkit: from the Kaggle ASL landmark data (or its synthetic twin) to a graded TFLite submission."""
from aslkit.compat import torchvision_shim as _torchvision_shim

__version__ = "0.1.0"
_torchvision_shim.install()
