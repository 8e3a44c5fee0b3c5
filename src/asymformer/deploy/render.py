"""Pictures for people: overlays, side-by-side panels, depth and attention heat maps (numpy + PIL).

Kept separate from predict so a camera loop can draw the same panels without file I/O.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# A perceptually ordered ramp (dark blue -> teal -> yellow), 5 anchors linearly interpolated.
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)


def _ramp() -> np.ndarray:
    x = np.linspace(0, len(_ANCHORS) - 1, 256)
    i = np.minimum(x.astype(int), len(_ANCHORS) - 2)
    t = (x - i)[:, None]
    return np.rint(_ANCHORS[i] * (1 - t) + _ANCHORS[i + 1] * t).astype(np.uint8)


RAMP = _ramp()


def colormap(values: np.ndarray, vmin: float | None = None, vmax: float | None = None,
             invalid=None) -> np.ndarray:
    """H×W float -> H×W×3 uint8 on the ramp; `invalid` (bool mask) pixels are black."""
    v = np.asarray(values, dtype=np.float32)
    ok = np.isfinite(v) if invalid is None else np.isfinite(v) & ~invalid
    lo = float(v[ok].min()) if vmin is None and ok.any() else (vmin or 0.0)
    hi = float(v[ok].max()) if vmax is None and ok.any() else (vmax if vmax is not None else 1.0)
    idx = np.clip((v - lo) / max(hi - lo, 1e-12) * 255.0, 0, 255)
    out = RAMP[np.nan_to_num(idx).astype(np.uint8)]
    out[~ok] = 0
    return out


def depth_image(depth_m: np.ndarray) -> np.ndarray:
    """Metric depth -> colours (near dark, far bright), 0 / invalid -> black."""
    return colormap(depth_m, invalid=~(depth_m > 0))


def overlay(rgb: np.ndarray, color_label: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colourised prediction over the photo (alpha = weight of the prediction)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    out = rgb.astype(np.float32) * (1 - alpha) + color_label.astype(np.float32) * alpha
    return np.rint(out).astype(np.uint8)


def panel(images: list[np.ndarray], titles: list[str], gap: int = 4) -> np.ndarray:
    """Side-by-side H×W×3 images with a title strip above each."""
    h = max(im.shape[0] for im in images)
    strip = 14
    width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, h + strip), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, title in zip(images, titles):
        canvas.paste(Image.fromarray(im), (x, strip))
        draw.text((x + 2, 1), title, fill=(0, 0, 0))
        x += im.shape[1] + gap
    return np.asarray(canvas)


def resize_map(m: np.ndarray, size_hw: tuple[int, int], crop_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Resize a low-resolution map (bilinear) to size_hw; crop_hw first removes padding cells."""
    m = np.asarray(m, dtype=np.float32)
    if crop_hw is not None:
        m = m[: crop_hw[0], : crop_hw[1]]
    img = Image.fromarray(m, mode="F").resize((size_hw[1], size_hw[0]), Image.BILINEAR)
    return np.asarray(img)


def attention_panel(rgb: np.ndarray, maps: list[np.ndarray], model_hw: tuple[int, int] | None = None) -> np.ndarray:
    """RGB beside the LAFS spatial maps of stages 2-4 (paper Fig. 2), each on its own range.

    The model pads its input (model_hw, default the photo's size) to multiples of 32, so the
    padding cells are cropped from each map before resizing it to the photo.
    """
    h, w = rgb.shape[:2]
    mh, mw = model_hw or (h, w)
    padded_h = -(-mh // 32) * 32
    tiles, titles = [rgb], ["rgb"]
    for i, m in enumerate(maps, start=2):
        stride = padded_h // m.shape[0]
        crop = (-(-mh // stride), -(-mw // stride))
        tiles.append(colormap(resize_map(m, (h, w), crop)))
        titles.append(f"LAFS stage {i} [{float(m.min()):.3f}, {float(m.max()):.3f}]")
    return panel(tiles, titles)
