"""PIL-only charts: line charts, horizontal bar charts, heatmaps, and stacking of panels.

A leaf module (numpy + PIL): reports must render on any machine without matplotlib. The charts
are plain but labelled: titles, axis ranges, class names, values.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127)]
_FONT = None


def _font():
    global _FONT
    if _FONT is None:
        _FONT = ImageFont.load_default()
    return _FONT


def _text_w(draw: ImageDraw.ImageDraw, text: str) -> int:
    box = draw.textbbox((0, 0), text, font=_font())
    return box[2] - box[0]


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
    d.text(((w - _text_w(d, xlabel)) // 2, h - 16), xlabel, fill="black", font=_font())
    d.text((4, top - 16), ylabel, fill="black", font=_font())
    for i, (name, (xs, ys)) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
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
    """Horizontal bars (one row per label, readable for 40 class names); None values show 'n/a'."""
    row, top, label_w, value_w = 16, 30, 150, 50
    img = Image.new("RGB", (width, top + row * len(labels) + 10), "white")
    d = ImageDraw.Draw(img)
    d.text((8, 8), title, fill="black", font=_font())
    lo, hi = value_range
    bar_w = width - label_w - value_w - 10
    for i, (label, value) in enumerate(zip(labels, values)):
        y = top + i * row
        d.text((4, y + 2), str(label)[:24], fill="black", font=_font())
        if value is None or not math.isfinite(float(value)):
            d.text((label_w, y + 2), "n/a", fill=(120, 120, 120), font=_font())
            continue
        frac = min(1.0, max(0.0, (float(value) - lo) / (hi - lo)))
        color = tuple(int(c) for c in colors[i]) if colors is not None else PALETTE[0]
        d.rectangle([label_w, y + 2, label_w + max(1, int(frac * bar_w)), y + row - 2], fill=color,
                    outline=(60, 60, 60))
        d.text((label_w + bar_w + 6, y + 2), f"{float(value):.3f}", fill="black", font=_font())
    return img


def heatmap(matrix, labels=None, title: str = "", normalize_rows: bool = True,
            cell: int | None = None) -> Image.Image:
    """Confusion-matrix style map (white -> dark blue); rows are normalised to sum 1 by default."""
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
    shade = (255 * (1 - np.clip(m, 0, 1) ** 0.5)).astype(np.uint8)
    rgb = np.stack([shade, shade, np.full_like(shade, 255) - (255 - shade) // 3], -1)
    block = Image.fromarray(rgb, "RGB").resize((n * cell, n * cell), Image.NEAREST)
    img.paste(block, (label_w, top))
    if labels is not None and cell >= 10:
        for i, name in enumerate(labels):
            d.text((4, top + i * cell + (cell - 11) // 2), str(name)[:20], fill="black", font=_font())
    d.rectangle([label_w, top, label_w + n * cell, top + n * cell], outline="black")
    return img


def stack(images, vertical: bool = True, gap: int = 8) -> Image.Image:
    """Concatenate panels with a white gap (vertical by default)."""
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


def legend(class_names, colors) -> Image.Image:
    """Colour swatches with class names, for reading prediction images (predict, evaluate, demo)."""
    row, cols = 18, 5
    rows = (len(class_names) + cols - 1) // cols
    out = Image.new("RGB", (cols * 140, rows * row + 4), "white")
    d = ImageDraw.Draw(out)
    for i, (n, c) in enumerate(zip(class_names, colors)):
        x, y = (i % cols) * 140 + 4, (i // cols) * row + 2
        d.rectangle([x, y + 2, x + 14, y + 14], fill=tuple(int(v) for v in c), outline="black")
        d.text((x + 20, y + 3), str(n)[:18], fill="black")
    return out


def save_image(image: Image.Image, path) -> Path:
    """Atomic PNG write (a report is never half-written); see asymformer.files."""
    from asymformer.files import save_image as _save

    return _save(image, path)
