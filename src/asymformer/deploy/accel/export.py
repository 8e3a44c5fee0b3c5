"""ONNX export (inputs `rgb`, `depth`; output `logits`), verified with ONNX Runtime right away.

The BN-folded model is exported, so the file is what runs fastest; the check compares ONNX
Runtime with the PyTorch model on the same random input, at the export size and, for dynamic
exports, at a second size, so a file that silently baked in a shape is caught here.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from asymformer.files import atomic_path, make_folder
from asymformer.models.convnext import convnext_channels_first
from asymformer.models.info import ModelInfo, info_of

from ..common import BackendUnavailable, example_inputs, fused_copy, numpy_feeds, ort_session

INPUT_NAMES = ("rgb", "depth")
OUTPUT_NAMES = ("logits",)


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ImportError("ONNX export needs onnx and onnxscript: pip install asymformer[onnx]") from None


OPSETS = (14, 23)  # what the TorchScript exporter honours for this model (SDPA needs 14; checked in tests)


def _export(model, rgb, depth, path: Path, dynamic: bool, opset: int) -> None:
    """Export into `path` (one self-contained file).

    The TorchScript-based exporter is tried first: on this model it is several times faster than
    the dynamo exporter (far more with dynamic shapes; benchmarks/RESULTS.md), and it writes opset
    17 natively (dynamo emits 18 and cannot convert `Pad` down). Dynamo is the fallback.
    """
    axes = {"rgb": {0: "batch", 2: "height", 3: "width"}, "depth": {0: "batch", 2: "height", 3: "width"},
            "logits": {0: "batch", 2: "height", 3: "width"}}
    kwargs = dict(input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), opset_version=opset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (rgb, depth), str(path), dynamo=False,
                              dynamic_axes=axes if dynamic else None, do_constant_folding=True, **kwargs)
            return
        except Exception as exc:  # noqa: BLE001 - try the other exporter before giving up
            first = exc
        dim = torch.export.Dim.DYNAMIC
        shapes = {"rgb": {0: dim, 2: dim, 3: dim}, "depth": {0: dim, 2: dim, 3: dim}} if dynamic else None
        try:
            program = torch.onnx.export(model, (rgb, depth), None, dynamo=True, dynamic_shapes=shapes,
                                        external_data=False, optimize=True, verbose=False, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f"{first}; dynamo exporter: {type(exc).__name__}: {exc}") from None
    program.save(str(path), external_data=False)


def export_onnx(model: torch.nn.Module, path, height: int = 480, width: int = 640, batch: int = 1,
                dynamic: bool = False, opset: int = 17, check: bool = True, atol: float = 1e-4,
                channels_first: bool = True, one_pass_norms: bool = False) -> dict:
    """Export `model` (BN-folded copy) to ONNX at `path`; returns a report (sizes checked, max |Δ|).

    `channels_first` exports ConvNeXt's pointwise MLP as 1×1 convolutions on NCHW maps (see
    `convnext_channels_first`): ONNX Runtime and OpenVINO run that graph faster. INT8 dynamic
    quantisation, which quantises MatMul but not Conv, asks for the Linear form instead.
    `one_pass_norms` (channels-first only) is for graphs that are then quantised: faster norms
    that give up FP32 exactness (`ChannelLayerNorm(one_pass=)`).

    Raises ValueError when the variant cannot be exported or the ONNX Runtime check fails.
    """
    _require_onnx()
    if isinstance(opset, bool) or not isinstance(opset, int) or not OPSETS[0] <= opset <= OPSETS[1]:
        raise ValueError(f"--opset {opset} cannot be honoured: this model exports at opsets {OPSETS[0]} to "
                         f"{OPSETS[1]} (attention needs 14); use 17 (the authors' choice)")
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"export path {path} must end in .onnx")
    make_folder(path.parent)
    fused = fused_copy(model, "cpu", torch.float32)  # the caller's model stays where it is
    if channels_first:
        convnext_channels_first(fused, one_pass_norms)
    # A dynamic graph is traced at a size that is not a multiple of 32, so the model's internal
    # pad-and-crop branch is recorded (padding by 0 is exact, so multiples of 32 still work).
    rgb, depth = example_inputs(batch, *((_off32(height), _off32(width)) if dynamic else (height, width)))
    with atomic_path(path, suffix=".tmp.onnx") as tmp:
        try:
            with torch.no_grad():
                _export(fused, rgb, depth, Path(tmp), dynamic, int(opset))
        except Exception as exc:  # noqa: BLE001 - exporter errors are many and deep
            info = info_of(model)
            name = (info.name if info is not None else None) or type(model).__name__
            raise ValueError(f"cannot export {name} to ONNX (opset {opset}, dynamic={dynamic}): "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
        if dynamic is False and _file_opset(tmp) != opset:  # never hand back another opset than asked for
            raise ValueError(f"--opset {opset} cannot be honoured: the exporter wrote opset {_file_opset(tmp)}; "
                             f"use 17 (the authors' choice)")
        _write_metadata(tmp, model)
        report = {"path": str(path), "opset": _file_opset(tmp), "dynamic": bool(dynamic),
                  "inputs": list(INPUT_NAMES), "outputs": list(OUTPUT_NAMES),
                  "export_shape": [batch, height, width]}
        if check:
            report["checks"] = check_onnx(tmp, fused, _check_sizes(batch, height, width, dynamic), atol)
    report["bytes"] = path.stat().st_size
    return report


def _write_metadata(path, model) -> None:
    """Store what a deployment needs to feed the graph: normalisation values, classes, units.

    ONNX metadata_props (string key/values): `asymformer.info` is the model's whole `ModelInfo`
    (JSON, `fused` true: the graph is folded); `asymformer.normalization` (rgb_mean / rgb_std
    applied to rgb / 255, depth_mean / depth_std to depth in metres) and `asymformer.class_names`
    repeat the two fields other tools need most, under the keys 0.1 files have.
    """
    entries = {"input": "rgb: (rgb / 255 - rgb_mean) / rgb_std, NCHW; depth: (metres - depth_mean) / "
                        "depth_std, N1HW, invalid depth = 0 m"}
    info = info_of(model)
    if info is not None:
        entries["info"] = info.replace(fused=True).to_dict()
        if info.normalization is not None:
            entries["normalization"] = info.normalization
        if info.class_names:
            entries["class_names"] = list(info.class_names)
    set_onnx_metadata(path, entries)


def read_onnx_metadata(path) -> dict:
    """The `asymformer.*` metadata_props of an ONNX file, as set_onnx_metadata stored them (strings)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key[len("asymformer."):]: p.value for p in proto.metadata_props if p.key.startswith("asymformer.")}


def read_onnx_info(path) -> ModelInfo | None:
    """The `ModelInfo` an exported ONNX file carries (files from 0.1 have only normalisation and
    class names: those are read), or None when it has none."""
    import json

    props = read_onnx_metadata(path)
    try:
        if "info" in props:
            return ModelInfo.from_dict(json.loads(props["info"]))
        names = json.loads(props.get("class_names", "null"))
        norm = json.loads(props.get("normalization", "null"))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: broken asymformer metadata ({exc}); export the model again") from None
    if names is None and norm is None:
        return None
    return ModelInfo(num_classes=len(names) if names else None, class_names=names, normalization=norm, fused=True)


def set_onnx_metadata(path, entries: dict) -> None:
    """Write `asymformer.<key>` metadata_props into the ONNX file at `path`, in place; strings are
    stored as they are, anything else as JSON, and other keys are kept. Writers call it on the
    temporary file that `files.atomic_path` then moves into place."""
    import json

    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    props.update({f"asymformer.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in entries.items()})
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


def _file_opset(path) -> int:
    import onnx

    return max(o.version for o in onnx.load(str(path), load_external_data=False).opset_import
               if o.domain in ("", "ai.onnx"))


def _off32(n: int) -> int:
    return n if n % 32 else n + 5


def _check_sizes(batch: int, height: int, width: int, dynamic: bool) -> list[tuple[int, int, int]]:
    sizes = [(batch, height, width)]
    if dynamic:  # a second, different and non-multiple-of-32 size proves the axes are really dynamic
        sizes.append((batch + 1, height + 37, width - 21 if width > 64 else width + 21))
    return sizes


def check_onnx(path, model: torch.nn.Module, sizes, atol: float = 1e-4) -> list[dict]:
    """Run the ONNX file in ONNX Runtime and PyTorch at each (batch, H, W); ValueError past atol."""
    try:
        sess = ort_session(path)
    except BackendUnavailable as exc:
        raise ImportError(str(exc)) from None
    results = []
    for b, h, w in sizes:
        rgb, depth = example_inputs(b, h, w, seed=1)
        with torch.inference_mode():
            ref = model(rgb, depth).numpy()
        try:
            out = sess.run(list(OUTPUT_NAMES), numpy_feeds(rgb, depth))[0]
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"ONNX Runtime failed on {path} at {b}×{h}×{w}: {str(exc)[:300]}") from None
        if out.shape != ref.shape:
            raise ValueError(f"ONNX output shape {out.shape} != PyTorch {ref.shape} at {b}×{h}×{w}")
        diff = float(np.abs(out - ref).max())
        if not diff <= atol:
            raise ValueError(f"ONNX Runtime differs from PyTorch by {diff:.2e} > {atol:g} at {b}×{h}×{w}")
        results.append({"shape": [b, h, w], "max_abs_diff": diff})
    return results


def temp_onnx_file(model, rgb, depth, dynamic=False, channels_first: bool = True, one_pass_norms: bool = False) -> str:
    """A temporary ONNX file of `model` at the shape of rgb/depth, for a runtime to load (the caller
    deletes it; a failure is BackendUnavailable)."""
    fd, path = tempfile.mkstemp(suffix=".onnx", prefix="asymformer_")
    os.close(fd)
    try:
        export_onnx(model, path, height=rgb.shape[-2], width=rgb.shape[-1], batch=rgb.shape[0],
                    dynamic=dynamic, check=False, channels_first=channels_first, one_pass_norms=one_pass_norms)
    except (ValueError, ImportError) as exc:
        remove_onnx(path)
        raise BackendUnavailable(str(exc)) from None
    return path


def remove_onnx(path) -> None:
    """Delete a temporary ONNX file and its external-data companion, if they exist."""
    for p in (str(path), f"{path}.data"):
        if os.path.exists(p):
            os.unlink(p)
