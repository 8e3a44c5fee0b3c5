"""The AsymFormer network, its weights I/O and FLOP counting."""

from .asymformer import VARIANTS, AsymFormer, create_model, list_models
from .flops import count_macs, model_info
from .info import ModelInfo, info_of
from .serialization import load_model, read_model_header, read_model_info, save_model
from .weights import load_backbone_weights, load_official_state_dict

__all__ = ["AsymFormer", "ModelInfo", "VARIANTS", "count_macs", "create_model", "info_of", "list_models",
           "load_backbone_weights", "load_model", "load_official_state_dict", "model_info", "read_model_header",
           "read_model_info", "save_model"]
