"""Turn user frames (numpy, PIL, tensors; one frame or a batch) into normalised model tensors.

Robots hand us whatever their camera driver gives: uint16 millimetre depth from RealSense, float
metres from a simulator, PIL images from files. Converting here, once, on the model's device
(normalisation included) keeps the per-frame host work to a single upload of raw bytes.
"""

from __future__ import annotations

import functools

import numpy as np
import torch


def normalization_params(preset) -> tuple[tuple, tuple, float, float]:
    """(rgb_mean, rgb_std, depth_mean, depth_std) of a preset name or dict, for on-device maths."""
    from asymformer.data.transforms import resolve_normalization

    spec = resolve_normalization(preset)
    return (tuple(float(v) for v in spec["rgb_mean"]), tuple(float(v) for v in spec["rgb_std"]),
            float(spec["depth_mean"]), float(spec["depth_std"]))


def _to_tensor(x, what: str) -> torch.Tensor:
    """numpy / PIL / tensor -> tensor (no copy where possible); PIL and numpy keep HWC layout."""
    if isinstance(x, torch.Tensor):
        return x
    if hasattr(x, "mode") and hasattr(x, "size") and not isinstance(x, np.ndarray):  # PIL image
        if what == "rgb" and x.mode != "RGB":
            x = x.convert("RGB")
        x = np.array(x)  # a writable copy: torch refuses read-only buffers
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{what}: empty list of frames")
        return torch.stack([_to_tensor(f, what) for f in x])
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{what}: expected a numpy array, PIL image or torch tensor, got {type(x).__name__}")
    if x.dtype == np.uint16:  # torch has limited uint16 support: int32 keeps every value exactly
        x = x.astype(np.int32)
    return torch.from_numpy(np.ascontiguousarray(x))


def rgb_to_batch(rgb, is_tensor_layout: bool) -> torch.Tensor:
    """Any accepted RGB input -> B×3×H×W uint8 tensor (still on the host device)."""
    t = _to_tensor(rgb, "rgb")
    if t.dtype != torch.uint8:
        raise ValueError(f"rgb: expected uint8 values 0..255, got {t.dtype}; convert floats in 0..1 with "
                         f"(x * 255).round().astype('uint8')")
    if is_tensor_layout:  # tensors follow torch's C×H×W convention
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"rgb tensor: expected 3×H×W or B×3×H×W, got {tuple(t.shape)}")
        return t
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"rgb array/image: expected H×W×3 or B×H×W×3, got {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2)


def depth_to_batch(depth, is_tensor_layout: bool) -> torch.Tensor:
    """Any accepted depth input -> B×1×H×W tensor in its stored dtype."""
    t = _to_tensor(depth, "depth")
    if not is_tensor_layout and t.ndim >= 3 and t.shape[-1] == 1:  # H×W×1 / B×H×W×1
        t = t[..., 0]
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[None] if (is_tensor_layout and t.shape[0] == 1) else t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"depth: expected H×W, 1×H×W, B×H×W or B×1×H×W, got {tuple(t.shape)}")
    return t


def depth_scale_for(depth: torch.Tensor, depth_scale) -> float:
    """Metres per stored unit; guessed only where unambiguous (uint16 = mm, float = metres)."""
    if depth_scale is not None:
        if not float(depth_scale) > 0:
            raise ValueError(f"depth_scale must be > 0 (metres per stored unit), got {depth_scale}")
        return float(depth_scale)
    if depth.dtype == torch.uint8:
        raise ValueError("depth is 8-bit: its unit is unknown (often a visualisation, not a measurement); "
                         "pass depth_scale=<metres per unit> explicitly")
    if not depth.dtype.is_floating_point:
        return 0.001  # uint16 / integer depth from RGB-D cameras: millimetres
    finite = depth[torch.isfinite(depth)]
    if finite.numel() and float(finite.max()) > 100.0:
        raise ValueError(f"float depth reaches {float(finite.max()):.1f}: that is not metres; pass "
                         f"depth_scale=0.001 for millimetres (or the right metres-per-unit factor)")
    return 1.0


@functools.lru_cache(maxsize=16)
def _rgb_affine(rgb_mean: tuple, rgb_std: tuple, device: str, dtype: torch.dtype):
    """Per-channel mean and 1/std in 0..255 units, made once per device and dtype: building
    them per frame would cost a host-to-device copy (and a stall) on every call on a GPU."""
    mean = torch.tensor(rgb_mean, dtype=torch.float64).view(1, 3, 1, 1) * 255.0
    inv = 1.0 / (torch.tensor(rgb_std, dtype=torch.float64).view(1, 3, 1, 1) * 255.0)
    return mean.to(device=device, dtype=dtype), inv.to(device=device, dtype=dtype)


def normalize_on_device(rgb: torch.Tensor, depth: torch.Tensor, params, scale: float,
                        device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Upload raw bytes, then /255, mean/std and depth unit -> metres -> mean/std on `device`.

    The arithmetic runs in float32 (uint16 millimetres do not fit float16's 11-bit mantissa)
    and the result is cast to `dtype`, the model's.
    """
    rgb_mean, rgb_std, d_mean, d_std = params
    rgb = rgb.to(device, non_blocking=True).to(torch.float32)
    depth = depth.to(device, non_blocking=True).to(torch.float32)
    mean, inv = _rgb_affine(tuple(rgb_mean), tuple(rgb_std), str(torch.device(device)), torch.float32)
    rgb = (rgb - mean) * inv
    depth = depth * scale
    depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.zeros_like(depth))
    depth = (depth - d_mean) / d_std
    return rgb.to(dtype).contiguous(), depth.to(dtype).contiguous()
