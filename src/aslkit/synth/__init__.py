"""Procedural generator of realistic landmark data in the exact Kaggle layouts (``aslkit synth``)."""
from aslkit.synth.writer import SIZES, generate, synthetic_info

__all__ = ["SIZES", "generate", "synthetic_info"]
