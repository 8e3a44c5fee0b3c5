"""`Segmenter`: frames in (numpy / PIL / tensors, any size, one or a batch), labels out.

The class a robot's loop holds: it owns the model on its device, the normalisation the
checkpoint was trained with and the depth unit of the camera, so each call is just
`seg(rgb, depth)`. Pre- and post-processing (normalise, argmax, softmax confidence) run on
the model's device, so a GPU loop uploads raw bytes and downloads two small maps.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asymformer.data.transforms import normalization_values, normalize_planar, prepare_frame
from asymformer.deprecation import notice, renamed_keyword
from asymformer.devices import resolve_device, set_threads
from asymformer.models.info import info_of
from asymformer.viz import palette

from .common import fused_copy
from .gil_free import GIL_BOUND_BACKENDS, GilFreeTraces
from .inputs import (
    depth_to_batch,
    depth_to_metres,
    depth_unit_for,
    invalid_depth_fraction,
    resize_on_device,
    rgb_to_batch,
)
from .postprocess import Workspace, labels_and_confidence

INVALID_DEPTH_WARN = 0.5  # share of invalid depth pixels that gets the once-per-run warning


@dataclass
class Segmentation:
    """labels: class per pixel (int64); confidence: softmax probability of that class (float32;
    None when made by `postprocess(confidence=False)`); logits: K scores per pixel when asked for.
    numpy (H×W / B×H×W, K first for logits) for numpy or PIL input, tensors on the model's device
    for tensor input."""

    labels: np.ndarray | torch.Tensor
    confidence: np.ndarray | torch.Tensor | None
    logits: np.ndarray | torch.Tensor | None = None
    attention: list | None = None

    def points(self, depth_m, intrinsics, colors=None, max_depth=None):
        """This single frame's labelled 3-D points (`outputs.points.back_project`): depth_m H×W
        metres, intrinsics an `Intrinsics` or 'fx,fy,cx,cy'; colors the class colours
        (`Segmenter.colors`; default the standard palette)."""
        from asymformer.outputs.points import Intrinsics, back_project

        labels = self.labels.detach().cpu().numpy() if isinstance(self.labels, torch.Tensor) else self.labels
        conf = self.confidence
        if conf is None:
            raise ValueError("Segmentation.points needs the confidence, which this result was made without "
                             "(postprocess(confidence=False), StreamRunner(confidence=False)): keep it on")
        conf = conf.detach().cpu().numpy() if isinstance(conf, torch.Tensor) else conf
        if np.ndim(labels) != 2:
            raise ValueError(f"Segmentation.points takes one frame; this result has shape {np.shape(labels)} "
                             "(index the batch first)")
        depth = depth_m.detach().cpu().numpy() if isinstance(depth_m, torch.Tensor) else depth_m
        return back_project(np.asarray(depth), Intrinsics.load(intrinsics), labels, conf, colors, max_depth)


def _load(model_or_path) -> torch.nn.Module:
    if isinstance(model_or_path, torch.nn.Module):
        return model_or_path
    if not isinstance(model_or_path, (str, Path)):
        raise ValueError(f"Segmenter: expected a model or a checkpoint path, got {type(model_or_path).__name__}")
    from asymformer.models import load_model
    from asymformer.models.weights import check_model_path

    check_model_path(model_or_path)

    return load_model(model_or_path)


class Segmenter:
    """Semantic segmentation of RGB-D frames with an AsymFormer model or checkpoint file.

    depth_unit: metres per stored depth value (0.001 for uint16 millimetres, 1.0 for float
    metres, as `--depth-unit` and dataset files); None infers it where unambiguous (integer ->
    mm, float <= 100 -> m). `depth_scale` is its deprecated 0.1 name.
    normalization: preset name or dict; default the checkpoint's (else "nyuv2_official").
    size: (H, W) to resize frames to before the model (labels come back at the frame size);
    None runs at the frame's own size.
    optimize: False uses the BN-folded model; True (or a list of backend names) measures the
    candidates with `optimize_for_inference` at `size` (default 480×640) and keeps the fastest.
    precision: "fp32" (default, exact), or on the CPU "int8" / "bf16" (bf16 only where the CPU
    has it natively): the fastest such path is built for `size` (default 480×640); frames of
    other sizes build another (slow), so pass `size` for a camera stream.
    threads: CPU threads for torch, ONNX Runtime and OpenVINO (an int, or "auto": $OMP_NUM_THREADS
    if set, else half the usable cores, which stays fast when other processes share the CPU).
    The count is process-wide (`asymformer.devices.set_threads`); None leaves the process's as is.
    """

    def __init__(self, model_or_path, device="auto", normalization=None, depth_unit=None,
                 size: tuple[int, int] | None = None, optimize=False, precision: str = "fp32", *,
                 threads=None, depth_scale=None):
        depth_unit = renamed_keyword("Segmenter", "depth_scale", "depth_unit", depth_scale, depth_unit)
        self.device = resolve_device(device)
        self.threads = set_threads(threads) if threads is not None else torch.get_num_threads()
        model = _load(model_or_path)
        info = info_of(model)
        if info is None or info.num_classes is None:
            raise ValueError(f"Segmenter: {type(model).__name__} says nothing about its classes; pass an AsymFormer "
                             "or a module with an integer num_classes attribute")
        self.num_classes = info.num_classes
        self.class_names = list(info.class_names) if info.class_names else _default_names(self.num_classes)
        self.colors = _colors(self.num_classes, info.colors)
        self.normalization = normalization or info.normalization or "nyuv2_official"
        self._norm = normalization_values(self.normalization)
        self.depth_unit = depth_unit
        if depth_unit is not None:
            depth_unit_for(torch.zeros(1), depth_unit)  # validate now, not on the first frame
        whole = isinstance(size, tuple | list) and all(isinstance(v, int | np.integer) and not isinstance(v, bool)
                                                        for v in size)
        if size is not None and not (whole and len(size) == 2 and min(size) >= 32):
            raise ValueError(f"size must be (H, W), two whole numbers >= 32, got {size!r}")
        self.size = tuple(size) if size is not None else None
        self.model = fused_copy(model, self.device)  # the caller's model stays where it is
        self.dtype = next(self.model.parameters()).dtype
        self._inferred_unit = {}  # (depth dtype, unit) -> metres per unit, for frames already on a GPU
        self.warned_invalid_depth = False  # the mostly-invalid-depth warning is shown once per Segmenter
        self.backend = "fused"
        self._fn = self.model
        self.precision = precision
        if optimize or precision != "fp32":  # int8 / bf16 always choose among their own paths
            from .optimize import optimize_for_inference

            h, w = self.size or (480, 640)
            cands = tuple(optimize) if precision == "fp32" and optimize is not True else None
            self._fn = optimize_for_inference(model, self.device, h, w, candidates=cands, precision=precision)
            self.backend = self._fn.backend
        self._traces = GilFreeTraces(self.model, self._fn)  # infer(gil_free=True): a trace per input size
        self._work = Workspace()  # post-processing's reused buffer, one per calling thread

    def __repr__(self) -> str:
        return (f"Segmenter(device={self.device}, backend={self.backend!r}, precision={self.precision!r}, "
                f"normalization={_short(self.normalization)!r}, classes={self.num_classes}, threads={self.threads})")

    @property
    def info(self) -> dict:
        """How frames are run: device, backend, precision, threads and size; for a path chosen by
        measurement (`optimize=`, `precision="int8"/"bf16"`) its own record too (median ms, agreement
        with FP32, and for INT8 the CPU's `int8_scheme`: 8-bit weights with VNNI, 7-bit without)."""
        out = {"device": str(self.device), "backend": self.backend, "precision": self.precision,
               "threads": self.threads, "size": list(self.size) if self.size else None}
        chosen = getattr(self._fn, "report", {}).get(self.backend)
        if chosen:
            out["chosen"] = dict(chosen)
        return out

    @property
    def depth_scale(self):
        """Deprecated 0.1 name of `depth_unit`."""
        warnings.warn(f"Segmenter.{notice('depth_scale', 'depth_unit')}", DeprecationWarning, stacklevel=2)
        return self.depth_unit

    def preprocess(self, rgb, depth, depth_unit=None, *,
                   depth_scale=None) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], bool]:
        """Frames -> normalised B×3×H×W / B×1×H×W float tensors on the device (+ frame size).

        numpy / PIL frames that need resizing go through `data.transforms.prepare_frame`, the
        code evaluation and `asymformer predict` use, so the same frame gives the same input
        everywhere. Without resizing, raw bytes are uploaded and normalised on the device with
        the same arithmetic (`normalize_planar`). Tensor frames (a GPU loop) stay on their
        device and resize with the torch port of the same rules (`resize_on_device`).
        """
        depth_unit = renamed_keyword("Segmenter.preprocess", "depth_scale", "depth_unit", depth_scale, depth_unit)
        is_tensor = isinstance(rgb, torch.Tensor)
        r = rgb_to_batch(rgb, is_tensor)
        d = depth_to_batch(depth, isinstance(depth, torch.Tensor))
        if r.shape[0] != d.shape[0] or r.shape[2:] != d.shape[2:]:
            raise ValueError(f"rgb {tuple(r.shape)} and depth {tuple(d.shape)} (as B×C×H×W) differ in "
                             f"batch or size; register depth to the colour image first")
        scale = self._depth_unit(d, self.depth_unit if depth_unit is None else depth_unit)
        frame = (r.shape[2], r.shape[3])
        size = self.size if self.size is not None and self.size != frame else None
        if min(size or frame) < 32:
            raise ValueError(f"frame {frame[0]}×{frame[1]} is smaller than 32 pixels on a side; "
                             f"resize it: --size HxW on the command line, size=(H, W) in Python")
        if is_tensor or size is None:  # no resize: the same arithmetic, on the device from raw bytes
            r, dm = r.to(self.device, non_blocking=True), depth_to_metres(d.to(self.device, non_blocking=True), scale)
            if size is not None:
                r, dm = resize_on_device(r, dm, size)
            x, dn = normalize_planar(r, dm, self._norm)
            return x.to(self.dtype), dn.to(self.dtype), frame, is_tensor
        dm = depth_to_metres(d, scale)[:, 0].numpy()
        rgb_hwc = r.permute(0, 2, 3, 1).numpy()
        pairs = [prepare_frame(rgb_hwc[i], dm[i], size, self._norm) for i in range(r.shape[0])]
        x = torch.stack([p[0] for p in pairs]).to(self.device, self.dtype)
        return x, torch.stack([p[1] for p in pairs]).to(self.device, self.dtype), frame, is_tensor

    def _depth_unit(self, d: torch.Tensor, depth_unit) -> float:
        """Metres per stored unit, its plausibility checked. Host frames are checked every time
        (and warned about once when most of their depth is invalid); frames already on a GPU are
        checked on the first frame of each dtype and unit, since the check needs the maximum,
        which would stall the GPU pipeline on every frame."""
        if d.device.type == "cpu":
            self._warn_invalid_depth(d)
            return depth_unit_for(d, depth_unit)
        key = (d.dtype, depth_unit)
        if key not in self._inferred_unit:
            self._inferred_unit[key] = depth_unit_for(d, depth_unit)
        return self._inferred_unit[key]

    def _warn_invalid_depth(self, d: torch.Tensor) -> None:
        """Once per Segmenter: most of a frame's depth is invalid, so the model runs nearly RGB-only."""
        if self.warned_invalid_depth:
            return
        fraction, cause = invalid_depth_fraction(d, INVALID_DEPTH_WARN)
        if fraction >= INVALID_DEPTH_WARN:
            self.warned_invalid_depth = True
            warnings.warn(f"{fraction:.0%} of the depth pixels are invalid, mostly {cause}; the model then "
                          "segments from colour alone and is less accurate (warned once)", stacklevel=4)

    @torch.inference_mode()
    def __call__(self, rgb, depth, return_logits: bool = False, return_attention: bool = False,
                 depth_unit=None, *, depth_scale=None, confidence: bool = True) -> Segmentation:
        """Segment one frame or a batch; outputs keep the batch dimension only if the input had it.

        depth_unit overrides the Segmenter's for this call (e.g. 1.0 for metres read from files);
        depth_scale is its deprecated 0.1 name. confidence=False: labels only (`confidence` None),
        about half the post-processing.
        """
        depth_unit = renamed_keyword("Segmenter", "depth_scale", "depth_unit", depth_scale, depth_unit,
                                     stacklevel=4)  # past inference_mode's wrapper, to the caller
        single = _is_single(rgb, isinstance(rgb, torch.Tensor))
        r, d, frame, is_tensor = self.preprocess(rgb, depth, depth_unit)
        maps = None
        if return_attention:
            logits, maps = self.model(r, d, return_attention=True)
        else:
            logits = self.infer(r, d)
        return self.postprocess(logits, frame, single, is_tensor, return_logits, maps, confidence)

    @torch.inference_mode()
    def infer(self, rgb: torch.Tensor, depth: torch.Tensor, *, gil_free: bool = False) -> torch.Tensor:
        """The model alone, on `preprocess`'s tensors: B×K×h×w logits on the device.

        One of the three stages of `__call__` (preprocess -> infer -> postprocess), public so a
        streaming runtime (`asymformer.stream.StreamRunner`) can overlap them across frames.
        gil_free: for a background thread. Eager PyTorch (this Segmenter's default backend on a
        CPU) takes Python's GIL back between operations, so Python work on any other thread stalls
        it (benchmarks/stream_latency.py: 30 % slower beside a 500 Hz producer thread; 27x beside
        a busy Python loop). Then a TorchScript trace of the same folded model runs instead: built
        on the first call at each input size (about 1-2 s), checked against eager within 1e-4
        (else eager, with a warning); AsymFormer networks only (deploy/gil_free.py says why).
        Backends that already run without the GIL (jit, ONNX Runtime, OpenVINO), GPUs and the
        eager bf16 path (not traced: it would need its own reference) are used as they are.
        """
        fn = self._gil_free_fn(rgb, depth) if gil_free else self._fn
        return fn(rgb, depth).to(self.device)

    def _gil_free_fn(self, rgb: torch.Tensor, depth: torch.Tensor):
        if self.device.type != "cpu" or self.backend not in GIL_BOUND_BACKENDS:
            return self._fn
        return self._traces.get(rgb, depth)

    @torch.inference_mode()
    def postprocess(self, logits: torch.Tensor, frame: tuple[int, int], single: bool = True,
                    is_tensor: bool = False, return_logits: bool = False, attention=None,
                    confidence: bool = True) -> Segmentation:
        """Logits -> labels and confidence at the frame size (numpy unless the frames were tensors).
        confidence=False leaves `confidence` None and takes about half the time (same labels)."""
        work = None if return_logits or not confidence else self._work.get(logits, tuple(frame))
        labels, conf, up = labels_and_confidence(logits, tuple(frame), keep_logits=return_logits, work=work,
                                                 confidence=confidence)
        out = Segmentation(labels, conf, up, attention)
        return _finish(out, single, is_tensor)


def _short(normalization):
    """A preset by its name; unnamed values rounded to 4 digits (a repr is read, not computed with)."""
    if isinstance(normalization, dict):
        if normalization.get("name"):
            return normalization["name"]
        return {k: [round(float(x), 4) for x in v] if isinstance(v, list | tuple) else round(float(v), 4)
                for k, v in normalization.items()}
    return normalization


def _default_names(num_classes) -> list[str] | None:
    """Names for a model that recorded none (a fresh `create_model`, a foreign module): those the
    released weights get for the same class count (40: NYUv2, 37: SUNRGBD), else None."""
    from asymformer.models.weights import official_info_fields

    names = official_info_fields(num_classes)["class_names"]
    return list(names) if names is not None else None


def _colors(num_classes: int, colors) -> np.ndarray:
    """The colours predictions are drawn with: the training dataset's when the model file recorded
    them (`model.info.colors`), else the standard palette (NYUv2-40 / SUNRGBD-37 / NYUv2-13's own)."""
    try:
        return palette(num_classes, colors)
    except ValueError as exc:
        raise ValueError(f"the model's recorded class colours do not fit its {num_classes} classes: {exc}; "
                         "save it again with asymformer.save_model(..., info=model.info.replace(colors=...)), "
                         "one colour per class") from None


def _is_single(rgb, is_tensor: bool) -> bool:
    if isinstance(rgb, (list, tuple)):
        return False
    if hasattr(rgb, "mode") and not isinstance(rgb, (np.ndarray, torch.Tensor)):
        return True
    return np.ndim(rgb) == 3 if not is_tensor else rgb.ndim == 3


def _finish(out: Segmentation, single: bool, is_tensor: bool) -> Segmentation:
    """Drop the batch axis for single frames; numpy for numpy/PIL callers."""
    def conv(t):
        if t is None:
            return None
        t = t[0] if single else t
        return t if is_tensor else t.detach().cpu().numpy()

    maps = None if out.attention is None else [conv(m[:, 0]) for m in out.attention]
    return Segmentation(conv(out.labels), conv(out.confidence), conv(out.logits), maps)
