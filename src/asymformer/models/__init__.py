"""The AsymFormer network, its weights I/O and FLOP counting."""

from .asymformer import VARIANTS, AsymFormer, create_model, list_models

__all__ = ["AsymFormer", "VARIANTS", "create_model", "list_models"]
