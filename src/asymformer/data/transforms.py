"""Training / evaluation transforms and input normalisation (numpy + PIL + torch only).

Transforms are called as `transform(sample, rng)` with `rng` a `np.random.Generator` that the
dataset derives from (seed, epoch, index), so augmentation is reproducible whatever the number
of workers. Input: the raw sample dict (rgb uint8 H×W×3, depth float32 metres with 0 =
invalid, label int64 with 255 = void, name). Output: rgb float32 3×H×W, depth float32 1×H×W
(both normalised), label int64 H×W, name.

Resampling rules (see docs/synthetic.md, "Transforms"):
- rgb: bilinear. labels: nearest (the official code resizes labels bilinearly: a known bug).
- depth: validity-weighted bilinear. `depth*valid` and `valid` are resized with the same
  bilinear filter and divided, so an output pixel is a convex combination of VALID depths
  only (never blended with an invalid 0); it stays invalid (0) where less than half of the
  filter weight fell on valid pixels, so holes keep their size.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image

from .base import IGNORE_INDEX

__all__ = ["NORMALIZATIONS", "normalize", "normalize_planar", "normalization_values", "prepare_frame",
           "TrainTransform", "EvalTransform", "hsv_jitter", "resize_depth"]

_NYU_DEPTH = {"depth_mean": 2.8424503515351494, "depth_std": 0.9932836506164299}
_IMAGENET_RGB = {"rgb_mean": (0.485, 0.456, 0.406), "rgb_std": (0.229, 0.224, 0.225)}

# rgb stats apply to rgb / 255; depth stats apply to the sample's depth field as stored
# (metres for every metric layout). Invalid depth (0) gets no special case: like the official
# code, 0 m is normalised as any other value, e.g. (0 - 2.84) / 0.99 = -2.86 for nyuv2_official.
NORMALIZATIONS: dict[str, dict] = {
    # Statistics of the released NYUv2 checkpoint's evaluation (ARCHITECTURE.md, Normalisation).
    "nyuv2_official": {"rgb_mean": (0.4850042694973687, 0.41627756261047333, 0.3981809741523051),
                       "rgb_std": (0.26415541082494515, 0.2728415392982039, 0.2831175140191598),
                       **_NYU_DEPTH},
    # What the official training script used for rgb; same metric depth statistics.
    "imagenet": {**_IMAGENET_RGB, **_NYU_DEPTH},
    # DFormer: rgb with ImageNet stats; its 8-bit per-image min-max depth is divided by 255
    # and normalised with mean 0.48 / std 0.28 (DFormer repeats it to 3 channels; here 1).
    # The dformer layout loads that depth as value / 255, so the stats apply to [0, 1] values.
    "dformer": {**_IMAGENET_RGB, "depth_mean": 0.48, "depth_std": 0.28},
}
_KEYS = ("rgb_mean", "rgb_std", "depth_mean", "depth_std")


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    x = np.asarray(x)
    if not x.flags.writeable or any(st < 0 for st in x.strides):
        x = np.ascontiguousarray(x).copy()  # read-only (PIL-backed) or flipped views: torch can't wrap
    return torch.from_numpy(x)


def normalization_values(preset) -> dict:
    """The one accessor of normalisation values: a preset name or a dict with rgb_mean (3), rgb_std (3),
    depth_mean and depth_std -> checked, JSON-ready values (lists and floats, plus "name" when known).

    Every user reads them here: the arithmetic below, the Segmenter, and the checkpoints and ONNX
    files that store the values (not only a name), so a file stays usable if a preset is ever
    renamed, and other tools can read what the model expects.
    """
    if isinstance(preset, str):
        if preset not in NORMALIZATIONS:
            raise ValueError(f"normalization {preset!r} is unknown; use one of "
                             f"{', '.join(NORMALIZATIONS)} or a dict with keys {', '.join(_KEYS)}")
        stats, name = NORMALIZATIONS[preset], preset
    elif isinstance(preset, dict) and all(k in preset for k in _KEYS):
        stats, name = preset, preset.get("name")
    else:
        raise ValueError(f"normalization must be a preset name ({', '.join(NORMALIZATIONS)}) or a dict "
                         f"with keys {', '.join(_KEYS)}, got {preset!r}")
    mean, std = np.asarray(stats["rgb_mean"], float), np.asarray(stats["rgb_std"], float)
    dstd = float(stats["depth_std"])
    if mean.shape != (3,) or std.shape != (3,) or (std <= 0).any() or dstd <= 0:
        raise ValueError(f"normalization dict needs 3 rgb means, 3 positive rgb stds and a positive "
                         f"depth_std, got {preset!r}")
    out = {"rgb_mean": [float(v) for v in mean], "rgb_std": [float(v) for v in std],
           "depth_mean": float(stats["depth_mean"]), "depth_std": dstd}
    if isinstance(name, str):
        out["name"] = name
    return out


@functools.lru_cache(maxsize=32)
def _rgb_affine(mean: tuple, std: tuple, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x * scale + shift == (x / 255 - mean) / std, made once per device: building them per frame
    would cost a host-to-device copy, and a stall, on every call on a GPU."""
    std64 = torch.tensor(std, dtype=torch.float64)
    scale = (1.0 / (255.0 * std64)).float().view(3, 1, 1)
    shift = (-torch.tensor(mean, dtype=torch.float64) / std64).float().view(3, 1, 1)
    return scale.to(device), shift.to(device)


def normalize_planar(rgb: torch.Tensor, depth: torch.Tensor, preset) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalisation arithmetic itself, on channels-first tensors on any device.

    rgb: (..., 3, H, W) 0..255 (uint8 or float), depth: (..., H, W) or (..., 1, H, W) metres.
    Every path (datasets, Segmenter, predict, evaluate) ends here, so the numbers are identical.
    """
    stats = normalization_values(preset)
    scale, shift = _rgb_affine(tuple(stats["rgb_mean"]), tuple(stats["rgb_std"]), str(rgb.device))
    x = rgb.to(torch.float32).contiguous()
    x = x.mul_(scale).add_(shift) if x.data_ptr() != rgb.data_ptr() else x.mul(scale).add_(shift)
    d = depth.to(torch.float32, copy=True).sub_(stats["depth_mean"]).mul_(1.0 / stats["depth_std"])
    return x, d


def normalize(rgb, depth, preset="nyuv2_official") -> tuple[torch.Tensor, torch.Tensor]:
    """rgb (H×W×3 or B×H×W×3, 0..255) and depth (H×W or B×H×W) -> float32 (3×H×W, 1×H×W) tensors.

    Batched input gives B×3×H×W and B×1×H×W. Accepts numpy arrays or tensors.
    """
    normalization_values(preset)
    rgb_t, d_t = _as_tensor(rgb), _as_tensor(depth)
    if rgb_t.ndim not in (3, 4) or rgb_t.shape[-1] != 3:
        raise ValueError(f"normalize: rgb must be H×W×3 or B×H×W×3, got shape {tuple(rgb_t.shape)}")
    if tuple(d_t.shape) != tuple(rgb_t.shape[:-1]):
        raise ValueError(f"normalize: depth must have shape {tuple(rgb_t.shape[:-1])} (rgb without "
                         f"channels), got {tuple(d_t.shape)}")
    # channels-first copy of the 8-bit data first, then in-place float maths: ~8× faster than
    # doing arithmetic on the strided channels-last view
    x, d = normalize_planar(rgb_t.movedim(-1, -3).contiguous(), d_t, preset)
    return x, d.unsqueeze(-3)


def prepare_frame(rgb: np.ndarray, depth: np.ndarray, size, preset) -> tuple[torch.Tensor, torch.Tensor]:
    """THE inference pre-processing: uint8 H×W×3 + metres H×W -> resized, normalised (3×h×w, 1×h×w).

    Evaluation (EvalTransform), `predict` and `Segmenter` all call this: rgb bilinear with PIL's
    antialiasing, depth validity-weighted (never blends valid depth with holes), then normalise.
    size None keeps the frame size.
    """
    if size is not None and tuple(size) != rgb.shape[:2]:
        rgb = _resize_rgb(rgb, size)
        depth = resize_depth(depth, size)
    return normalize(rgb, depth, preset)


# --------------------------------------------------------------------------- resampling
def _resize_rgb(rgb: np.ndarray, size_hw, box=None) -> np.ndarray:
    img = Image.fromarray(rgb).resize((size_hw[1], size_hw[0]), Image.BILINEAR, box=box)
    return np.asarray(img)


def _resize_label(label: np.ndarray, size_hw, box=None) -> np.ndarray:
    small = label.min() >= 0 and label.max() <= 255
    img = Image.fromarray(label.astype(np.uint8 if small else np.int32))
    return np.asarray(img.resize((size_hw[1], size_hw[0]), Image.NEAREST, box=box)).astype(np.int64)


def resize_depth(depth: np.ndarray, size_hw, box=None) -> np.ndarray:
    """Validity-weighted bilinear resize (module docstring): never blends a valid depth with 0."""
    valid = (depth > 0).astype(np.float32)
    w, h = size_hw[1], size_hw[0]
    num = np.asarray(Image.fromarray(depth.astype(np.float32) * valid).resize((w, h), Image.BILINEAR, box=box))
    den = np.asarray(Image.fromarray(valid).resize((w, h), Image.BILINEAR, box=box))
    out = num / np.maximum(den, np.float32(1e-6))
    out[den < 0.5] = 0.0
    return out


def hsv_jitter(rgb: np.ndarray, hue: float, sat: float, val: float) -> np.ndarray:
    """Paper HSV jitter on uint8 rgb: H×hue, S×sat (both clipped to [0, 1]), V+val (0..255 scale).

    PIL converts to 8-bit HSV; the way back is table look-ups: for each output channel,
    rgb = V' * (1 - S' * f(H')) where the jittered (S', H') pair indexes one 65536-entry table.
    About 3× faster than float numpy; 8-bit hue/saturation cost a mean 0.6 levels of
    round-trip error, far below the jitter itself.
    """
    hb, sb, vb = (np.asarray(b) for b in Image.fromarray(rgb).convert("HSV").split())  # contiguous planes
    i = np.arange(256, dtype=np.float64)
    h6 = np.clip(i * hue, 0, 255) / 255.0 * 6.0
    s = np.clip(i * sat, 0, 255) / 255.0
    v = np.clip(i + val, 0, 255).astype(np.float32)[vb]
    idx = (sb.astype(np.int32) << 8) | hb
    out = np.empty((3, *rgb.shape[:2]), np.uint8)
    for c, n in enumerate((5.0, 3.0, 1.0)):  # closed form of HSV -> RGB, one table per channel
        k = (n + h6) % 6.0
        table = (1.0 - s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)[None, :]).astype(np.float32)
        out[c] = np.rint(v * table.ravel()[idx])
    return out.transpose(1, 2, 0)  # H×W×3 view of planar memory: normalize() then needs no copy


def _check_sample(sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    name = sample.get("name", "?") if isinstance(sample, dict) else "?"
    try:
        rgb, depth, label = (np.asarray(sample[k]) for k in ("rgb", "depth", "label"))
    except (KeyError, TypeError):
        raise ValueError("transform: sample must be a dict with rgb, depth, label and name "
                         "(the raw sample of a dataset without transform)") from None
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"transform: sample {name!r}: rgb must be uint8 H×W×3, got {rgb.dtype} {rgb.shape}")
    if depth.shape != rgb.shape[:2] or label.shape != rgb.shape[:2]:
        raise ValueError(f"transform: sample {name!r}: depth {depth.shape} and label {label.shape} must "
                         f"both be {rgb.shape[:2]} (the rgb size)")
    return rgb, depth.astype(np.float32, copy=False), label


def _size_arg(value, arg: str, allow_none: bool):
    if value is None and allow_none:
        return None
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{arg} must be (height, width){' or None' if allow_none else ''}, "
                         f"got {value!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{arg} must be positive, got {value!r}")
    return h, w


def _window(scaled: int, crop: int, rng) -> tuple[int, int, int]:
    """(source offset, destination offset, length) of a random crop along one axis (pads if short)."""
    if scaled >= crop:
        return int(rng.integers(0, scaled - crop + 1)), 0, crop
    return 0, int(rng.integers(0, crop - scaled + 1)), scaled


def _finish(rgb, depth, label, name, norm) -> dict:
    x, d = normalize(rgb, depth, norm)
    return {"rgb": x, "depth": d, "label": _as_tensor(np.asarray(label, np.int64)), "name": name}


class TrainTransform:
    """The paper recipe: resize to base_size -> scale U[scale_range] -> HSV -> crop -> flip -> normalise.

    The two resizes and the crop are done as ONE resample of only the crop window (PIL
    `resize(box=...)`), which is geometrically identical to resizing the whole image then
    cropping, and costs far less (benchmarks/data_pipeline.py measures it). HSV jitter is per-pixel, so applying
    it to the window before padding equals the paper's order. Padding (when the scaled image
    is smaller than the crop) is rgb 0, depth 0 (invalid), label 255 (void).
    """

    def __init__(self, crop_size=(480, 640), base_size=(480, 640), scale_range=(1.0, 2.0), hsv=True,
                 flip=True, normalization="nyuv2_official"):
        self.crop_size = _size_arg(crop_size, "crop_size", allow_none=False)
        self.base_size = _size_arg(base_size, "base_size", allow_none=True)
        try:
            lo, hi = (float(v) for v in scale_range)
        except (TypeError, ValueError):
            raise ValueError(f"scale_range must be (min, max), got {scale_range!r}") from None
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < min <= max, got {scale_range!r}")
        self.scale_range = (lo, hi)
        self.hsv, self.flip = bool(hsv), bool(flip)
        normalization_values(normalization)
        self.normalization = normalization

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        rgb, depth, label = _check_sample(sample)
        h, w = rgb.shape[:2]
        bh, bw = self.base_size or (h, w)
        s = rng.uniform(*self.scale_range)
        sh, sw = max(1, round(bh * s)), max(1, round(bw * s))
        ch, cw = self.crop_size
        oy, dy, lh = _window(sh, ch, rng)
        ox, dx, lw = _window(sw, cw, rng)
        box = (ox * w / sw, oy * h / sh, (ox + lw) * w / sw, (oy + lh) * h / sh)
        win_rgb = _resize_rgb(rgb, (lh, lw), box)
        if self.hsv:
            win_rgb = hsv_jitter(win_rgb, rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1), rng.uniform(-25, 25))
        win_depth = resize_depth(depth, (lh, lw), box)
        win_label = _resize_label(label, (lh, lw), box)
        if (lh, lw) != (ch, cw):
            out_rgb = np.zeros((ch, cw, 3), np.uint8)
            out_depth = np.zeros((ch, cw), np.float32)
            out_label = np.full((ch, cw), IGNORE_INDEX, np.int64)
            out_rgb[dy:dy + lh, dx:dx + lw] = win_rgb
            out_depth[dy:dy + lh, dx:dx + lw] = win_depth
            out_label[dy:dy + lh, dx:dx + lw] = win_label
            win_rgb, win_depth, win_label = out_rgb, out_depth, out_label
        out = _finish(win_rgb, win_depth, win_label, sample.get("name", ""), self.normalization)
        if self.flip and rng.random() < 0.5:  # on the tensors: cheaper than copying flipped views
            out.update(rgb=out["rgb"].flip(-1), depth=out["depth"].flip(-1), label=out["label"].flip(-1))
        return out

    def __repr__(self) -> str:
        return (f"TrainTransform(crop_size={self.crop_size}, base_size={self.base_size}, "
                f"scale_range={self.scale_range}, hsv={self.hsv}, flip={self.flip}, "
                f"normalization={self.normalization!r})")


class EvalTransform:
    """Resize (rgb bilinear, depth validity-aware, label nearest) to `size` and normalise.

    The official protocol evaluates at 480×640, NYUv2's native size, so for NYUv2 nothing is
    resized. `size=None` keeps every input size. `keep_label=True` leaves the label at its
    native size (the evaluator must then upsample the logits), for scoring against the
    original annotation of datasets whose images are not 480×640 (SUNRGBD).
    """

    def __init__(self, size=(480, 640), normalization="nyuv2_official", keep_label: bool = False):
        self.size = _size_arg(size, "size", allow_none=True)
        normalization_values(normalization)
        self.normalization = normalization
        self.keep_label = bool(keep_label)

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        rgb, depth, label = _check_sample(sample)
        frame = rgb.shape[:2]
        x, d = prepare_frame(rgb, depth, self.size, self.normalization)
        if self.size is not None and self.size != frame and not self.keep_label:
            label = _resize_label(label, self.size)
        return {"rgb": x, "depth": d, "label": _as_tensor(np.asarray(label, np.int64)),
                "name": sample.get("name", ""), "frame_size": torch.tensor(frame)}

    def __repr__(self) -> str:
        return (f"EvalTransform(size={self.size}, normalization={self.normalization!r}, "
                f"keep_label={self.keep_label})")
