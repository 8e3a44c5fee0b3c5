"""The AsymFormer network, its weights I/O and FLOP counting."""

from .asymformer import VARIANTS, AsymFormer, create_model, list_models
from .flops import count_macs, model_info
from .serialization import load_model, read_model_header, save_model
from .weights import load_backbone_weights, load_official_state_dict

__all__ = ["AsymFormer", "VARIANTS", "count_macs", "create_model", "list_models", "load_backbone_weights",
           "load_model", "load_official_state_dict", "model_info", "read_model_header", "save_model"]
