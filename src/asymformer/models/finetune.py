"""Fine-tuning starts: weights from any model file, whatever its class count.

Reads our `.safetensors` and the official `.pth` alike (serialization + weights), so it sits
above both and neither imports the other back.
"""

from __future__ import annotations

import os

from .asymformer import AsymFormer
from .info import ModelInfo
from .serialization import is_safetensors, read_model_info, read_safetensors
from .weights import (
    check_finite,
    check_model_path,
    describe_official,
    extract_state_dict,
    official_info_fields,
    official_to_ours,
    read_checkpoint,
)

CLASSIFIER_PREFIX = "Decoder.linear_pred."


def read_any_weights(path) -> tuple[dict, ModelInfo]:
    """(state dict in our names, the file's ModelInfo) from our .safetensors or an official .pth."""
    path = check_model_path(path, "--init-from")
    if is_safetensors(path):
        info = read_model_info(path)
        return read_safetensors(path)[0], info
    sd = official_to_ours(extract_state_dict(read_checkpoint(path), path))
    head = sd.get(CLASSIFIER_PREFIX + "weight")  # the variant is not checked here: any shapes that fit load
    num_classes = int(head.shape[0]) if head is not None and head.ndim > 0 else None
    return sd, ModelInfo(num_classes=num_classes, **official_info_fields(num_classes))


def checkpoint_normalization(path):
    """The input normalisation a checkpoint was trained with (a fine-tuned model should keep it)."""
    path = check_model_path(path, "--init-from")
    if is_safetensors(path):
        return read_model_info(path).normalization  # values (dict), or None
    return "nyuv2_official"


def load_matching_weights(model: AsymFormer, path) -> dict:
    """Fine-tuning start: copy every tensor of `path` whose name and shape fit `model`.

    The classifier (Decoder.linear_pred) keeps its fresh initialisation when the class count
    differs; any other misfit means the file is another variant, which is refused. Returns
    {"loaded": [...], "reinitialised": [...], "unused": [...], "info": the file's ModelInfo}.
    """
    path = os.fspath(path)
    sd, info = read_any_weights(path)
    check_finite(sd, path)
    own = model.state_dict()
    loaded = [k for k in own if k in sd and sd[k].shape == own[k].shape]
    misfit = [k for k in own if k not in loaded]
    head = [k for k in misfit if k.startswith(CLASSIFIER_PREFIX)]
    other = [k for k in misfit if not k.startswith(CLASSIFIER_PREFIX)]
    if other:
        detail = "; ".join(f"{k} {tuple(sd[k].shape) if k in sd else 'absent'} vs {tuple(own[k].shape)}"
                           for k in other[:3])
        raise ValueError(f"--init-from {path}: {len(other)} tensors outside the classifier do not fit "
                         f"{model.info.name or 'this model'} ({detail}). The file looks like: "
                         f"{describe_official(sd)}; pass the matching --model")
    model.load_state_dict({k: sd[k] for k in loaded}, strict=False)
    return {"loaded": loaded, "reinitialised": head, "unused": [k for k in sd if k not in own], "info": info}
