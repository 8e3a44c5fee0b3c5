"""Our model file: safetensors weights plus the model's `ModelInfo` in the header's `__metadata__`.

Model files come from the internet, so parsing them is security surface: the `safetensors`
library (small, audited, a core dependency) reads and writes them, and refuses malformed headers
(overlapping or out-of-range `data_offsets`, a truncated file, unknown dtypes) that a
hand-written reader let through as wrong weights. Reading goes through `safe_open`, which maps
the file privately (copy-on-write) and returns tensors that are views of that one mapping, so
loading a model costs one copy of the weights, into the parameters. Our metadata is one JSON
string under `__metadata__["asymformer"]` (the format allows string values only), as since 0.1.
`load_model` also takes the official `.pth` checkpoint.
"""

from __future__ import annotations

import json
import os

import torch

from asymformer.files import atomic_path

from .asymformer import VARIANTS, AsymFormer, create_model
from .info import ModelInfo, info_of, unwrap
from .weights import (
    check_finite,
    check_model_path,
    check_state_dict,
    extract_state_dict,
    infer_official_config,
    load_official_state_dict,
    read_checkpoint,
)

FORMAT = "asymformer"


def save_safetensors(tensors: dict[str, torch.Tensor], path, metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` atomically with the `safetensors` library (which lays every tensor out
    aligned to its element size, so the reader views it in place); `metadata` values become strings."""
    import safetensors.torch as st

    data = {}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"save_safetensors: {name} is a {type(t).__name__}, not a tensor")
        data[name] = t.detach().cpu().contiguous()
    meta = {str(k): str(v) for k, v in metadata.items()} if metadata else None
    try:
        with atomic_path(path, suffix=".tmp") as tmp:
            st.save_file(data, tmp, metadata=meta)
    except (TypeError, RuntimeError, ValueError) as exc:  # shared storage, an unsupported dtype
        raise ValueError(f"cannot save tensors to {path}: {exc}") from None


def _open(path: str):
    """`safe_open` on `path`, with the library's refusal as one line naming the file."""
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(path, framework="pt")
    except SafetensorError as exc:
        reason = str(exc).removeprefix("Error while deserializing header: ")
        raise ValueError(f"{path} has a broken safetensors header ({reason}): the file is damaged or was "
                         "altered; copy it again or re-export it") from None


def read_safetensors(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, `__metadata__`) of a safetensors file, without copying the tensor data.

    `safe_open` maps the file copy-on-write and every tensor is a view of that one mapping
    (writing to one never changes the file); the mapping lives as long as any of the tensors.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a safetensors file")
    with _open(path) as f:
        meta = f.metadata() or {}
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    # An empty tensor's view points at its neighbour's bytes; torch.save would take the two for one
    # storage seen as two dtypes, so it gets storage of its own (no bytes to copy).
    return {k: torch.empty(t.shape, dtype=t.dtype) if t.numel() == 0 else t for k, t in tensors.items()}, meta


def read_safetensors_metadata(path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file; the header is validated, the weights are not read."""
    path = os.fspath(path)
    with _open(path) as f:
        return f.metadata() or {}


def save_model(model: AsymFormer, path, class_names=None, normalization=None, info: ModelInfo | None = None, *,
               metadata: dict | None = None) -> None:
    """Save the weights and the model's `info` (what rebuilds it and how to feed it).

    `info` replaces `model.info` for this file (the trainer adds run facts); `class_names` and
    `normalization` (a preset name or values) override those two fields. `metadata=` is 0.1's
    free-form dict (colours, sizes, run facts): still read into `info`, deprecated.
    """
    model = unwrap(model)
    if info is not None and not isinstance(info, ModelInfo):
        raise TypeError(f"save_model: info must be a ModelInfo (model.info.replace(...)), got {type(info).__name__}")
    info = info if info is not None else info_of(model)
    if metadata is not None and info is not None:
        info = _with_v1_metadata(info, metadata)
    if info is None or info.name not in VARIANTS:
        raise ValueError("save_model needs a model built by asymformer.create_model (model.info.name is unset)")
    if info.fused:
        raise ValueError("save the model before model.fuse(): fused weights cannot rebuild a trainable model")
    if info.num_classes != model.num_classes:
        raise ValueError(f"save_model: info says {info.num_classes} classes but the model has {model.num_classes}")
    changes = {"class_names": class_names, "normalization": normalization}
    info = info.replace(**{k: v for k, v in changes.items() if v is not None})
    from asymformer import __version__

    header = {"asymformer_version": __version__, **info.to_dict()}
    save_safetensors(model.state_dict(), path, {"format": FORMAT, FORMAT: json.dumps(header)})


def _with_v1_metadata(info: ModelInfo, metadata: dict) -> ModelInfo:
    import warnings

    from asymformer.deprecation import notice

    warnings.warn(f"save_model: keyword {notice('metadata', 'info=model.info.replace(...)')}", DeprecationWarning,
                  stacklevel=3)
    v1 = {"model_name": info.name, "model_kwargs": {**info.kwargs, "num_classes": info.num_classes},
          "metadata": dict(metadata)}
    old = ModelInfo.from_dict(v1)  # the 0.1 reader maps the free-form keys onto fields
    fields = {k: getattr(old, k) for k in ("colors", "train_size", "eval_size", "selected_on_split", "source")}
    return info.replace(**{k: v for k, v in fields.items() if v is not None},
                        training={**info.training, **old.training})


def is_safetensors(path) -> bool:
    """Our files start with a u64 header length then a JSON object; a .pth is a zip or a pickle."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_model_header(path) -> dict:
    """The JSON header of one of our model files (as stored), without loading the weights."""
    path = os.fspath(path)
    meta = read_safetensors_metadata(path)
    try:
        header = json.loads(meta[FORMAT]) if isinstance(meta, dict) and FORMAT in meta else None
    except (ValueError, TypeError):
        raise ValueError(f"{path} has a broken asymformer header: the file is damaged; copy it again or "
                         "re-export it") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is a safetensors file without asymformer metadata; build the model with "
                         "asymformer.create_model(...) and load the tensors with model.load_state_dict")
    return header


def read_model_info(path) -> ModelInfo:
    """The `ModelInfo` of one of our model files (0.1 files included), without loading the weights."""
    header = read_model_header(path)
    try:
        return ModelInfo.from_dict(header)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_model(path, map_location="cpu") -> AsymFormer:
    """Rebuild a model from our `.safetensors` file or from the official `.pth` checkpoint."""
    path = check_model_path(path, "model file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty (0 bytes): the download or copy was cut short; fetch it again")
    if is_safetensors(path):  # safetensors: u64 length then a JSON object
        info = read_model_info(path)
        if info.name not in VARIANTS:
            raise ValueError(f"{path} names an unknown model {info.name!r}; available: {', '.join(VARIANTS)}")
        tensors, _ = read_safetensors(path)
        model = create_model(info.name, num_classes=info.num_classes, **info.kwargs)
        check_state_dict(model, tensors, path)
        check_finite(tensors, path)
        model.load_state_dict(tensors)
        model.info = info
    else:
        sd = extract_state_dict(read_checkpoint(path), path)
        check_finite(sd, path)
        name, num_classes = infer_official_config(sd, path)
        model = load_official_state_dict(create_model(name, num_classes=num_classes), sd)
    return model.to(map_location).eval()
