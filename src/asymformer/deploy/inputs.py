"""Turn user frames (numpy, PIL, tensors; one frame or a batch) into normalised model tensors.

Robots hand us whatever their camera driver gives: uint16 millimetre depth from RealSense, float
metres from a simulator, PIL images from files. Converting here, once, on the model's device
(normalisation included) keeps the per-frame host work to a single upload of raw bytes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


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
        frames = [_to_tensor(f, what) for f in x]
        shapes = sorted({tuple(f.shape) for f in frames})
        if len(shapes) > 1:
            raise ValueError(f"{what}: the frames of a list must share one shape to make a batch, got {shapes[:3]}; "
                             "call once per frame instead")
        return torch.stack(frames)
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{what}: expected a numpy array, PIL image or torch tensor, got {type(x).__name__}")
    if x.dtype.kind not in "biufc":  # objects, strings: torch would raise a TypeError from deep inside
        raise ValueError(f"{what} holds {x.dtype} values; expected a numeric array")
    if x.dtype == np.uint16:  # torch has limited uint16 support: int32 keeps every value exactly
        x = x.astype(np.int32)
    return torch.from_numpy(np.ascontiguousarray(x))


def rgb_to_batch(rgb, is_tensor_layout: bool) -> torch.Tensor:
    """Any accepted RGB input -> B×3×H×W uint8 tensor (still on the host device)."""
    t = _to_tensor(rgb, "rgb")
    if t.dtype != torch.uint8:
        t = _colour_to_uint8(t)
    if is_tensor_layout:  # tensors follow torch's C×H×W convention
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"rgb tensor: expected 3×H×W or B×3×H×W, got {tuple(t.shape)}")
        return t
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3:
        hint = "; drop the alpha channel with rgb[..., :3] (and check it is not BGRA)" if t.shape[-1] == 4 else ""
        raise ValueError(f"rgb array/image: expected H×W×3 or B×H×W×3, got {tuple(t.shape)}{hint}")
    return t.permute(0, 3, 1, 2)


_INTEGER_DEPTH = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.bool)


def _colour_to_uint8(t: torch.Tensor) -> torch.Tensor:
    """Non-uint8 colour -> uint8 by the one rule files follow too (data.io.colour_scale): float
    0..1 is scaled by 255, float 0..255 rounded, anything else refused with the fix."""
    from asymformer.data.io import colour_scale

    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"rgb holds {t.dtype} values; expected uint8 colour (or float in 0..1)")
    if t.numel() == 0:
        return t.to(torch.uint8)
    lo, hi = torch.aminmax(t.to(torch.float32) if not t.is_floating_point() else t)
    scale = colour_scale(t.is_floating_point(), float(lo), float(hi), f"rgb ({t.dtype})")
    return (t.to(torch.float32) * scale).round_().clamp_(0, 255).to(torch.uint8)


def depth_to_batch(depth, is_tensor_layout: bool) -> torch.Tensor:
    """Any accepted depth input -> B×1×H×W tensor in its stored dtype."""
    t = _to_tensor(depth, "depth")
    if t.is_complex() or not (t.is_floating_point() or t.dtype in _INTEGER_DEPTH):
        raise ValueError(f"depth holds {str(t.dtype).removeprefix('torch.')} values; expected integer or float depth")
    if not is_tensor_layout and t.ndim >= 3 and t.shape[-1] in (2, 3, 4):
        raise ValueError(f"depth has {t.shape[-1]} channels (shape {tuple(t.shape)}); depth must be one channel "
                         "(H×W): a colour-mapped picture of depth is not depth; pass the camera's depth image")
    if not is_tensor_layout and t.ndim >= 3 and t.shape[-1] == 1:  # H×W×1 / B×H×W×1
        t = t[..., 0]
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[None] if (is_tensor_layout and t.shape[0] == 1) else t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"depth: expected one channel (H×W, 1×H×W, B×H×W or B×1×H×W), got {tuple(t.shape)}")
    return t


def depth_unit_for(depth: torch.Tensor, depth_unit) -> float:
    """Metres per stored value: the same rule as files (data.io.resolve_depth_unit) for arrays.

    Given: must be > 0. Not given: float = metres, integer = millimetres, 8-bit refused (its
    unit is unknown). Either way, depth whose farthest point is implausible after the unit
    (data.io.check_depth_range: past 100 m, under 1 cm) is refused naming the likely unit.
    """
    from asymformer.data.io import check_depth_range, resolve_depth_unit

    if depth.dtype.is_floating_point:
        dtype = np.dtype(np.float32)
    elif depth.dtype in (torch.uint8, torch.int8, torch.bool):
        dtype = np.dtype(np.uint8)
    else:
        dtype = np.dtype(np.int32)
    unit = resolve_depth_unit(dtype, depth_unit, "depth")
    if depth.numel():
        valid = depth[torch.isfinite(depth)] if depth.dtype.is_floating_point else depth
        top = float(valid.max()) * unit if valid.numel() else 0.0
        check_depth_range(top, unit, "depth", given=depth_unit is not None)
    return unit


def invalid_depth_fraction(depth: torch.Tensor, warn_at: float = 0.5) -> tuple[float, str | None]:
    """(share of pixels without depth, likely cause) of stored depth, as data.io.invalid_depth.

    One pass over the frame; the cause (three more) only when the share reaches `warn_at`."""
    from asymformer.data.io import invalid_depth

    if depth.numel() == 0:
        return 0.0, None
    valid = depth > 0
    if depth.is_floating_point():
        valid &= torch.isfinite(depth)
    fraction = 1.0 - float(valid.float().mean())
    if fraction < warn_at:
        return fraction, None
    found = invalid_depth(depth.detach().cpu().numpy())
    return found["invalid_fraction"], found["cause"]


def depth_to_metres(depth: torch.Tensor, scale: float) -> torch.Tensor:
    """Stored depth -> float32 metres with invalid (0, NaN, negative) = 0, on depth's device."""
    d = depth.to(torch.float32) * np.float32(scale)
    return torch.where(torch.isfinite(d) & (d > 0), d, torch.zeros_like(d))


def resize_on_device(rgb: torch.Tensor, depth_m: torch.Tensor, size) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch port of data.transforms.prepare_frame's resize, for tensor frames already on a GPU.

    Same rules: rgb bilinear with antialiasing (PIL's filter), depth validity-weighted so valid
    depth is never blended with holes, and pixels with < half valid weight stay invalid.
    """
    r = F.interpolate(rgb.to(torch.float32), size=size, mode="bilinear", align_corners=False, antialias=True)
    valid = (depth_m > 0).to(torch.float32)
    num = F.interpolate(depth_m * valid, size=size, mode="bilinear", align_corners=False, antialias=True)
    den = F.interpolate(valid, size=size, mode="bilinear", align_corners=False, antialias=True)
    d = num / den.clamp_min(1e-6)
    return r.clamp_(0, 255), torch.where(den < 0.5, torch.zeros_like(d), d)
