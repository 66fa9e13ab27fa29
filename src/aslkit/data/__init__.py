"""Readers of the two Kaggle layouts (exactly as the graders read them) with clear errors on bad input."""
from aslkit.data.errors import DataError

__all__ = ["DataError"]
