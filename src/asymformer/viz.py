"""Every picture asymformer draws: class palettes, label colours, the colour ramp for depth and
attention, overlays, titled panels, legends and the charts of training and evaluation reports.

A leaf module (numpy + PIL, nothing else of asymformer's): data, engine, deploy and the demo all
draw with it, and reports render on any machine without matplotlib. Pixel maps (`colorize`,
`colormap`, `depth_image`, `overlay`) are H×W×3 uint8 arrays, so a camera loop can use them
without files; composed pictures (panels, legends, charts) are PIL images, written with
`asymformer.files.save_image`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

VOID = 255  # the label value of unlabelled pixels (the datasets' ignore index): drawn black
_FONT = None


def _font():
    global _FONT
    if _FONT is None:
        _FONT = ImageFont.load_default()
    return _FONT


# ----------------------------------------------------------------------------- colours


def palette(num_classes: int, colors=None) -> np.ndarray:
    """The num_classes × 3 uint8 colours labels are drawn with: `colors` when given (a dataset's or
    a checkpoint's recorded colours, checked), else the standard palette.

    The standard palette interleaves the bits of i + 1 over R, G, B (the PASCAL VOC construction,
    skipping black), so every class gets a distinct colour, black stays reserved for void and the
    colours never change between releases. NYUv2-40 / SUNRGBD-37 / NYUv2-13 use it as their own.
    """
    if num_classes < 0:
        raise ValueError(f"palette: num_classes must be >= 0, got {num_classes}")
    if colors is not None:
        try:
            arr = np.asarray(colors, dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.zeros((0,))
        if arr.shape != (num_classes, 3) or not np.isfinite(arr).all() or (arr.size and (
                arr.min() < 0 or arr.max() > 255 or (arr != np.round(arr)).any())):
            raise ValueError(f"'colors' must be {num_classes} [r, g, b] triples of integers in 0..255 "
                             f"(one per class), got shape {arr.shape}")
        return arr.astype(np.uint8)
    out = np.zeros((num_classes, 3), dtype=np.uint8)
    for i in range(num_classes):
        code, rgb = i + 1, [0, 0, 0]
        for shift in range(7, -1, -1):
            for c in range(3):
                rgb[c] |= ((code >> c) & 1) << shift
            code >>= 3
        out[i] = rgb
    return out


def colorize(label, colors) -> np.ndarray:
    """Map an H×W class map (0..K-1, 255 = void) to an H×W×3 uint8 image (void -> black)."""
    label = np.asarray(label)
    colors = np.asarray(colors, dtype=np.uint8)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"colorize: label must be an H×W integer array, got {label.dtype} {label.shape}")
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise ValueError(f"colorize: colors must be K×3, got shape {colors.shape}")
    k = len(colors)
    if k > VOID:
        raise ValueError(f"colorize: at most 255 classes are supported (255 is void), got {k}")
    bad = (label != VOID) & ((label < 0) | (label >= k))
    if bad.any():
        values = np.unique(label[bad])[:10].tolist()
        raise ValueError(f"colorize: label values {values} are outside 0..{k - 1} (and 255 = void) "
                         f"for a palette of {k} colours")
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:k] = colors
    return lut.take(label.astype(np.intp, copy=False), axis=0)  # 6x faster than lut[label] at 480x640


# A perceptually ordered ramp (dark violet -> teal -> yellow, like viridis): 5 anchors, 256 steps.
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)


def _ramp() -> np.ndarray:
    x = np.linspace(0, len(_ANCHORS) - 1, 256)
    i = np.minimum(x.astype(int), len(_ANCHORS) - 2)
    t = (x - i)[:, None]
    return np.rint(_ANCHORS[i] * (1 - t) + _ANCHORS[i + 1] * t).astype(np.uint8)


RAMP = _ramp()


def colormap(values, lo: float | None = None, hi: float | None = None, invalid=None) -> np.ndarray:
    """H×W numbers -> H×W×3 uint8 on RAMP (lo -> its first colour, hi -> its last); non-finite and
    `invalid` (bool mask) pixels are black. lo / hi default to the valid pixels' range."""
    v = np.asarray(values, dtype=np.float32)
    ok = np.isfinite(v) if invalid is None else np.isfinite(v) & ~np.asarray(invalid, bool)
    if lo is None:
        lo = float(v[ok].min()) if ok.any() else 0.0
    if hi is None:
        hi = float(v[ok].max()) if ok.any() else 1.0
    idx = np.clip((np.where(ok, v, lo) - lo) / max(hi - lo, 1e-12) * 255.0, 0, 255)
    out = RAMP[np.rint(idx).astype(np.uint8)]
    out[~ok] = 0
    return out


def depth_image(depth_m) -> np.ndarray:
    """Metric depth -> colours (near dark, far bright), 0 / invalid -> black."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    return colormap(depth_m, invalid=~(depth_m > 0))


def overlay(rgb, color_label, alpha: float = 0.5) -> np.ndarray:
    """Blend the colourised prediction over the photo (alpha = weight of the prediction)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    rgb, color_label = np.asarray(rgb), np.asarray(color_label)
    if rgb.shape != color_label.shape:
        raise ValueError(f"overlay: photo {rgb.shape} and colourised labels {color_label.shape} differ in size")
    out = rgb.astype(np.float32) * (1 - alpha) + color_label.astype(np.float32) * alpha
    return np.rint(out).astype(np.uint8)


# ----------------------------------------------------------------------------- panels


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int) -> str:
    """`text` cut to `width` pixels, so a long caption never runs into its neighbour's. A cut text
    ends in "..", so a shortened number ("2.9e-05" -> "2.9e-0..") is not read as another one."""
    if draw.textlength(text, font=_font()) <= width:
        return text
    while text and draw.textlength(text + "..", font=_font()) > width:
        text = text[:-1]
    return text + ".." if text else ""


def panel(images, titles, scale: int = 1, gap: int = 4) -> Image.Image:
    """Side-by-side H×W×3 uint8 images, each enlarged `scale` times (nearest), under a caption."""
    tiles = [Image.fromarray(np.asarray(im, np.uint8)) for im in images]
    tiles = [t.resize((t.width * scale, t.height * scale), Image.NEAREST) if scale != 1 else t for t in tiles]
    strip = 14
    out = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1),
                            max(t.height for t in tiles) + strip), "white")
    draw = ImageDraw.Draw(out)
    x = 0
    for tile, title in zip(tiles, titles):
        out.paste(tile, (x, strip))
        draw.text((x + 2, 1), _fit(draw, title, tile.width - 2), fill="black", font=_font())
        x += tile.width + gap
    return out


def prediction_panel(rgb, depth_m, labels, colors, truth=None, name: str = "", scale: int = 1) -> Image.Image:
    """rgb | depth | prediction (| ground truth, with the pixel accuracy over labelled pixels)."""
    tiles = [np.asarray(rgb, np.uint8), depth_image(depth_m), colorize(labels, colors)]
    titles = [f"rgb {name}".strip(), "depth (m)", "prediction"]
    if truth is not None:
        truth, labels = np.asarray(truth), np.asarray(labels)
        valid = truth != VOID
        if valid.any():
            titles[2] += f" (pixel acc {(labels[valid] == truth[valid]).mean():.2f})"
        tiles.append(colorize(truth, colors))
        titles.append("ground truth")
    return panel(tiles, titles, scale=scale)


def attention_panel(rgb, maps, model_hw: tuple[int, int] | None = None, name: str = "",
                    scale: int = 1) -> Image.Image:
    """The photo beside the LAFS spatial maps of stages 2-4 (paper Fig. 2), each on its own range.

    The model pads its input (model_hw, default the photo's size) to multiples of 32, so the
    padding cells are cropped from each map before it is resized (bilinear) to the photo. The
    caption gives each map's largest deviation from 0.5: with the released code's division by C²
    the maps stay close to 0.5 (docs/paper_vs_code.md).
    """
    rgb = np.asarray(rgb, np.uint8)
    h, w = rgb.shape[:2]
    mh, mw = model_hw or (h, w)
    padded_h = -(-mh // 32) * 32
    tiles, titles = [rgb], [f"rgb {name}".strip()]
    for stage, m in enumerate(maps, start=2):
        m = np.asarray(m, dtype=np.float32)
        stride = padded_h // m.shape[0]
        crop = m[: -(-mh // stride), : -(-mw // stride)]
        big = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((w, h), Image.BILINEAR))
        tiles.append(colormap(big))
        titles.append(f"LAFS {stage}: 0.5 +- {float(np.abs(crop - 0.5).max()):.1e}")
    return panel(tiles, titles, scale=scale)


def legend(class_names, colors) -> Image.Image:
    """Colour swatches with class names, for reading prediction images (predict, evaluate, demo)."""
    row, cols = 18, 5
    rows = (len(class_names) + cols - 1) // cols
    out = Image.new("RGB", (cols * 140, rows * row + 4), "white")
    d = ImageDraw.Draw(out)
    for i, (n, c) in enumerate(zip(class_names, colors)):
        x, y = (i % cols) * 140 + 4, (i // cols) * row + 2
        d.rectangle([x, y + 2, x + 14, y + 14], fill=tuple(int(v) for v in c), outline="black")
        d.text((x + 20, y + 3), _fit(d, str(n), 114), fill="black", font=_font())
    return out


def stack(images, vertical: bool = True, gap: int = 8) -> Image.Image:
    """Concatenate pictures with a white gap (vertical by default)."""
    images = list(images)
    if vertical:
        w, h = max(i.width for i in images), sum(i.height for i in images) + gap * (len(images) - 1)
    else:
        w, h = sum(i.width for i in images) + gap * (len(images) - 1), max(i.height for i in images)
    out = Image.new("RGB", (w, h), "white")
    pos = 0
    for im in images:
        out.paste(im, (0, pos) if vertical else (pos, 0))
        pos += (im.height if vertical else im.width) + gap
    return out


# ----------------------------------------------------------------------------- charts


def _fmt(v: float) -> str:
    if float(v).is_integer() and abs(v) < 1e6:
        return str(int(v))
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.2f}" if a >= 0.01 else f"{v:.1e}"


def line_chart(series: dict, title: str = "", xlabel: str = "", ylabel: str = "",
               size: tuple[int, int] = (720, 360)) -> Image.Image:
    """series: name -> (xs, ys). Non-finite points are skipped; a legend lists the names."""
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 60, 20, 30, 40
    pts = [(float(x), float(y)) for xs, ys in series.values() for x, y in zip(xs, ys)
           if math.isfinite(float(y))]
    d.text((left, 8), title, fill="black", font=_font())
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    if not pts:
        return img
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1 = x1 if x1 > x0 else x0 + 1
    pad = (y1 - y0) * 0.05 or abs(y0) * 0.05 or 1.0
    y0, y1 = y0 - pad, y1 + pad

    def to_px(x, y):
        return (left + (x - x0) / (x1 - x0) * (w - left - right),
                h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))

    for i in range(5):  # y grid + tick labels
        yv = y0 + (y1 - y0) * i / 4
        _, py = to_px(x0, yv)
        d.line([left, py, w - right, py], fill=(225, 225, 225))
        d.text((4, py - 6), _fmt(yv), fill="black", font=_font())
    for xv in (x0, (x0 + x1) / 2, x1):
        px, _ = to_px(xv, y0)
        d.text((px - 10, h - bottom + 4), _fmt(xv), fill="black", font=_font())
    d.text(((w - d.textlength(xlabel, font=_font())) // 2, h - 16), xlabel, fill="black", font=_font())
    d.text((4, top - 16), ylabel, fill="black", font=_font())
    for i, ((name, (xs, ys)), color) in enumerate(zip(series.items(), palette(len(series)))):
        color = tuple(int(c) for c in color)
        line = [to_px(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(float(y))]
        if len(line) > 1:
            d.line(line, fill=color, width=2)
        for px, py in line if len(line) <= 60 else []:
            d.ellipse([px - 2, py - 2, px + 2, py + 2], fill=color)
        tx = w - right - 120
        d.line([tx, top + 10 + 14 * i, tx + 16, top + 10 + 14 * i], fill=color, width=3)
        d.text((tx + 20, top + 4 + 14 * i), str(name), fill="black", font=_font())
    return img


def bar_chart(labels, values, title: str = "", value_range: tuple[float, float] = (0.0, 1.0),
              colors=None, width: int = 720) -> Image.Image:
    """Horizontal bars (one row per label, readable for 40 class names); None values show 'n/a'.
    colors: one per label (the class palette); default the palette's first colour."""
    row, top, label_w, value_w = 16, 30, 150, 50
    colors = palette(len(labels), colors) if colors is not None else np.repeat(palette(1), len(labels), 0)
    img = Image.new("RGB", (width, top + row * len(labels) + 10), "white")
    d = ImageDraw.Draw(img)
    d.text((8, 8), title, fill="black", font=_font())
    lo, hi = value_range
    bar_w = width - label_w - value_w - 10
    for i, (label, value) in enumerate(zip(labels, values)):
        y = top + i * row
        d.text((4, y + 2), _fit(d, str(label), label_w - 8), fill="black", font=_font())
        if value is None or not math.isfinite(float(value)):
            d.text((label_w, y + 2), "n/a", fill=(120, 120, 120), font=_font())
            continue
        frac = min(1.0, max(0.0, (float(value) - lo) / (hi - lo)))
        d.rectangle([label_w, y + 2, label_w + max(1, int(frac * bar_w)), y + row - 2],
                    fill=tuple(int(c) for c in colors[i]), outline=(60, 60, 60))
        d.text((label_w + bar_w + 6, y + 2), f"{float(value):.3f}", fill="black", font=_font())
    return img


def heatmap(matrix, labels=None, title: str = "", normalize_rows: bool = True,
            cell: int | None = None) -> Image.Image:
    """Confusion-matrix style map on RAMP (0 dark, 1 bright; square-root scaled so that small
    confusions show); rows are normalised to sum 1 by default, else the matrix by its maximum."""
    m = np.asarray(matrix, dtype=np.float64)
    if normalize_rows:
        sums = m.sum(1, keepdims=True)
        m = np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)
    else:
        m = m / m.max() if m.max() > 0 else m
    n = m.shape[0]
    cell = cell or max(6, min(24, 720 // max(n, 1)))
    label_w = 130 if labels is not None else 10
    top = 30
    img = Image.new("RGB", (label_w + n * cell + 10, top + n * cell + 10), "white")
    d = ImageDraw.Draw(img)
    d.text((8, 8), title + ("  (rows: truth, cols: prediction)" if title else ""), fill="black", font=_font())
    rgb = colormap(np.sqrt(np.clip(m, 0, 1)), lo=0.0, hi=1.0)
    img.paste(Image.fromarray(rgb, "RGB").resize((n * cell, n * cell), Image.NEAREST), (label_w, top))
    if labels is not None and cell >= 10:
        for i, name in enumerate(labels):
            d.text((4, top + i * cell + (cell - 11) // 2), _fit(d, str(name), label_w - 8), fill="black",
                   font=_font())
    d.rectangle([label_w, top, label_w + n * cell, top + n * cell], outline="black")
    return img
