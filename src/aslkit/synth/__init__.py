"""Procedural generator of realistic landmark data in the exact Kaggle layouts (``aslkit synth``)."""
from aslkit.synth.writer import generate, synthetic_info

__all__ = ["generate", "synthetic_info"]
