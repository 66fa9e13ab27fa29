"""aslkit: from the Kaggle ASL landmark data (or its synthetic twin) to a graded TFLite submission."""
__version__ = "0.1.0"
