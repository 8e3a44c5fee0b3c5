"""Our model file: safetensors weights plus a JSON header that rebuilds the model.

The safetensors format (8-byte little-endian header length, JSON header, raw little-endian
tensor bytes) is simple enough to read and write here without another dependency; the files
open with the `safetensors` library too. `load_model` also takes the official `.pth` checkpoint.
"""

from __future__ import annotations

import json
import os
import struct

import torch

from asymformer.files import atomic_write_bytes

from .asymformer import VARIANTS, AsymFormer, create_model
from .weights import (
    check_finite,
    check_state_dict,
    extract_state_dict,
    infer_official_config,
    load_official_state_dict,
    read_checkpoint,
)

_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
           torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
           torch.bool: "BOOL"}
_FROM_CODE = {v: k for k, v in _DTYPES.items()}
FORMAT = "asymformer"


def save_safetensors(tensors: dict[str, torch.Tensor], path, metadata: dict[str, str] | None = None) -> None:
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        if t.dtype not in _DTYPES:
            raise ValueError(f"tensor {name} has unsupported dtype {t.dtype}")
        data = t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    atomic_write_bytes(path, [struct.pack("<Q", len(raw)), raw, *blobs])


def read_safetensors(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8:
            raise ValueError("header longer than the file")
        header = json.loads(data[8:8 + n])
    except (struct.error, ValueError, UnicodeDecodeError):
        raise ValueError(f"{path} is not a safetensors file (bad header)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file (bad header)")
    meta = header.pop("__metadata__", {}) or {}
    base, tensors = 8 + n, {}
    for name, info in header.items():
        try:
            start, end = info["data_offsets"]
            if base + end > len(data):
                raise ValueError(f"{path} is truncated (tensor {name} ends past the end of the file)")
            buf = bytearray(data[base + start:base + end])
            dtype = _FROM_CODE[info["dtype"]]
            t = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
            tensors[name] = t.reshape(info["shape"])
        except (KeyError, TypeError, RuntimeError) as exc:
            raise ValueError(f"{path} has a broken safetensors header at tensor {name!r} ({type(exc).__name__}: "
                             f"{exc}); the file is damaged: copy it again or re-export it") from None
    return tensors, meta


def save_model(model: AsymFormer, path, class_names=None, normalization=None, metadata: dict | None = None) -> None:
    """Save weights + everything needed to rebuild: variant name, kwargs, class names, normalisation."""
    if getattr(model, "fused", False):
        raise ValueError("save the model before model.fuse(): fused weights cannot rebuild a trainable model")
    if model.model_name not in VARIANTS:
        raise ValueError("save_model needs a model built by asymformer.create_model (model.model_name is unset)")
    model = getattr(model, "module", model)
    names = list(class_names) if class_names is not None else model.class_names
    if names is not None and len(names) != model.num_classes:
        raise ValueError(f"{len(names)} class names given for a model with {model.num_classes} classes")
    norm = normalization if normalization is not None else model.normalization
    if norm is not None:  # stored as mean/std values (+ preset name): readable without our presets
        from asymformer.data.transforms import normalization_values

        norm = normalization_values(norm)
    header = {"format_version": 1, "model_name": model.model_name, "model_kwargs": model.model_kwargs,
              "class_names": names, "normalization": norm, "metadata": metadata or {}}
    from asymformer import __version__

    header["asymformer_version"] = __version__
    save_safetensors(model.state_dict(), path, {"format": FORMAT, FORMAT: json.dumps(header)})


def is_safetensors(path) -> bool:
    """Our files start with a u64 header length then a JSON object; a .pth is a zip or a pickle."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_model_header(path) -> dict:
    """The JSON header of one of our model files, without loading the weights."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > os.fstat(f.fileno()).st_size - 8:
                raise ValueError("header longer than the file")
            meta = json.loads(f.read(n)).get("__metadata__", {})
        header = json.loads(meta[FORMAT]) if FORMAT in meta else None
    except (struct.error, ValueError, UnicodeDecodeError, AttributeError, TypeError):
        raise ValueError(f"{path} has a broken safetensors header (not the JSON a safetensors file starts "
                         "with): the file is damaged or not a model; copy it again or re-export it") from None
    if header is None:
        raise ValueError(f"{path} is a safetensors file without asymformer metadata; build the model with "
                         "asymformer.create_model(...) and load the tensors with model.load_state_dict")
    return header


def load_model(path, map_location="cpu") -> AsymFormer:
    """Rebuild a model from our `.safetensors` file or from the official `.pth` checkpoint."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty (0 bytes): the download or copy was cut short; fetch it again")
    if is_safetensors(path):  # safetensors: u64 length then a JSON object
        header = read_model_header(path)
        tensors, _ = read_safetensors(path)
        model = create_model(header["model_name"], **header["model_kwargs"])
        check_state_dict(model, tensors, path)
        check_finite(tensors, path)
        model.load_state_dict(tensors)
        model.class_names = header.get("class_names")
        model.normalization = header.get("normalization")  # values (dict), or a preset name in old files
        model.metadata = header.get("metadata", {})
    else:
        sd = extract_state_dict(read_checkpoint(path), path)
        check_finite(sd, path)
        name, num_classes = infer_official_config(sd, path)
        model = create_model(name, num_classes=num_classes)
        load_official_state_dict(model, sd)
        model.normalization = "nyuv2_official"
        model.metadata = {"source": "official checkpoint"}
    return model.to(map_location).eval()
