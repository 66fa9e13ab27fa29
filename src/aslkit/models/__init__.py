"""Model families of the kit, built from configs (no pretrained downloads)."""
from aslkit.models.ctc import CTCConfig, CTCEncoder
from aslkit.models.transformer import SignTransformer, TransformerConfig

__all__ = ["CTCConfig", "CTCEncoder", "SignTransformer", "TransformerConfig"]
