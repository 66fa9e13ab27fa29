"""Model families of the kit, built from configs (no pretrained downloads)."""
from aslkit.models.transformer import SignTransformer, TransformerConfig

__all__ = ["SignTransformer", "TransformerConfig"]
