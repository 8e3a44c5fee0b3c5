"""Our model file: safetensors weights plus the model's `ModelInfo` in the header.

The safetensors format (8-byte little-endian header length, JSON header, raw little-endian
tensor bytes) is simple enough to read and write here without another dependency, and this is
its only reader and writer; the files open with the `safetensors` library too (a test checks
both ways). Reading maps the file and returns tensors that are views of that one mapping, so
loading a model costs one copy of the weights, into the parameters. `load_model` also takes
the official `.pth` checkpoint.
"""

from __future__ import annotations

import json
import mmap
import os

import torch

from asymformer.files import atomic_write_bytes

from .asymformer import VARIANTS, AsymFormer, create_model
from .info import ModelInfo, info_of, unwrap
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
    """Write `tensors` atomically. Widest dtypes first, so every tensor starts at a multiple of its
    element size and the reader can view it in place; the bytes are written from the tensors'
    own memory (no serialised copy)."""
    header, offset, blobs = {}, 0, []
    items = sorted(tensors.items(), key=lambda kv: -kv[1].element_size())  # stable: keeps order within a width
    for name, t in items:
        if t.dtype not in _DTYPES:
            raise ValueError(f"tensor {name} has unsupported dtype {t.dtype}")
        data = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + data.size]}
        offset += data.size
        blobs.append(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # tensor data starts 8-byte aligned
    atomic_write_bytes(path, [len(raw).to_bytes(8, "little"), raw, *blobs])


def _read_header(f, path: str) -> tuple[dict, int]:
    """(header JSON, offset of the tensor data) of an open safetensors file."""
    size = os.fstat(f.fileno()).st_size
    try:
        n = int.from_bytes(f.read(8), "little")
        if size < 8 or n > size - 8:
            raise ValueError("header longer than the file")
        header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path} has a broken safetensors header (not the JSON a safetensors file starts "
                         "with): the file is damaged or not a model; copy it again or re-export it") from None
    return header, 8 + n


def read_safetensors(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, `__metadata__`) of a safetensors file, without copying the tensor data.

    The file is mapped copy-on-write and every tensor lies in that one mapping (writing to one
    never changes the file); the mapping lives as long as any of the tensors. Only a tensor
    stored at an offset its dtype cannot be viewed at (files from other writers) is copied.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        header, base = _read_header(f, path)
        size = os.fstat(f.fileno()).st_size
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        except OSError:  # a file system without mmap: read it, once
            f.seek(0)
            mapped = bytearray(f.read())
    meta = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, entry in header.items():
        dtype, start, end, shape = _entry(entry, name, path, base)
        if end > size:
            raise ValueError(f"{path} is truncated (tensor {name} ends past the end of the file); copy it again")
        if start == end:
            tensors[name] = torch.empty(shape, dtype=dtype)
        elif start % dtype.itemsize:
            raw = torch.frombuffer(mapped, dtype=torch.uint8, count=end - start, offset=start)
            tensors[name] = raw.clone().view(dtype).reshape(shape)
        else:  # its own storage over its bytes of the mapping, so torch.save(tensors) works as for any dict
            tensors[name] = torch.frombuffer(mapped, dtype=dtype, count=(end - start) // dtype.itemsize,
                                             offset=start).reshape(shape)
    return tensors, meta


def _entry(entry, name: str, path: str, base: int) -> tuple[torch.dtype, int, int, list[int]]:
    """(dtype, start, end, shape) of one header entry, checked against itself."""
    try:
        dtype = _FROM_CODE[entry["dtype"]]
        start, end = (base + int(v) for v in entry["data_offsets"])
        shape = [int(v) for v in entry["shape"]]
        if not base <= start <= end or end - start != torch.Size(shape).numel() * dtype.itemsize:
            raise ValueError(f"offsets {entry['data_offsets']} do not hold shape {shape} of {entry['dtype']}")
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path} has a broken safetensors header at tensor {name!r} ({type(exc).__name__}: "
                         f"{exc}); the file is damaged: copy it again or re-export it") from None
    return dtype, start, end, shape


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
    with open(path, "rb") as f:
        meta = _read_header(f, path)[0].get("__metadata__") or {}
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
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
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
