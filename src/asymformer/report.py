"""The demo's report: sample panels, LAFS attention maps and a self-contained report.html.

PIL only (like viz.py): the report must build on any machine. The HTML links PNGs by relative
path, so the output folder can be moved, zipped or opened straight from disk.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from asymformer import files, viz

_TURBO_STOPS = np.array([[48, 18, 59], [70, 107, 227], [40, 187, 236], [49, 242, 153], [162, 252, 60],
                         [237, 208, 58], [251, 128, 34], [208, 47, 6], [122, 4, 3]], dtype=np.float32)


def colormap(values: np.ndarray, lo: float | None = None, hi: float | None = None,
             invalid: np.ndarray | None = None) -> np.ndarray:
    """H×W floats -> H×W×3 uint8 with a turbo-like ramp; `invalid` pixels are black."""
    v = np.asarray(values, dtype=np.float32)
    ok = np.isfinite(v) if invalid is None else (~invalid & np.isfinite(v))
    lo = float(v[ok].min()) if lo is None and ok.any() else (lo or 0.0)
    hi = float(v[ok].max()) if hi is None and ok.any() else (hi if hi is not None else 1.0)
    t = np.clip((v - lo) / max(hi - lo, 1e-9), 0, 1) * (len(_TURBO_STOPS) - 1)
    i = np.minimum(t.astype(int), len(_TURBO_STOPS) - 2)
    f = (t - i)[..., None]
    rgb = _TURBO_STOPS[i] * (1 - f) + _TURBO_STOPS[i + 1] * f
    rgb[~ok] = 0
    return rgb.astype(np.uint8)


def _titled(images: list[np.ndarray], titles: list[str], scale: int = 2) -> Image.Image:
    """A row of same-size images with a caption above each, enlarged `scale` times (nearest)."""
    h, w = images[0].shape[:2]
    cw, ch, gap, top = w * scale, h * scale, 6, 16
    out = Image.new("RGB", (len(images) * (cw + gap) - gap, ch + top), "white")
    d = ImageDraw.Draw(out)
    for k, (im, title) in enumerate(zip(images, titles)):
        x = k * (cw + gap)
        out.paste(Image.fromarray(im).resize((cw, ch), Image.NEAREST), (x, top))
        d.text((x + 2, 2), title, fill="black")
    return out


def sample_panel(rgb, depth, pred, label, colors, name: str = "", miou: float | None = None) -> Image.Image:
    """RGB | depth | prediction | ground truth for one frame (void and invalid depth in black)."""
    from asymformer.data.classes import colorize

    depth = np.asarray(depth, np.float32)
    images = [np.asarray(rgb, np.uint8), colormap(depth, invalid=depth <= 0),
              colorize(np.asarray(pred), colors), colorize(np.asarray(label), colors)]
    acc = ""
    valid = np.asarray(label) != 255
    if valid.any():
        acc = f" (pixel acc {(np.asarray(pred)[valid] == np.asarray(label)[valid]).mean():.2f})"
    return _titled(images, [f"RGB {name}", "depth (m)", "prediction" + acc, "ground truth"])


def attention_panel(rgb, maps: list[np.ndarray], name: str = "") -> Image.Image:
    """RGB plus the LAFS spatial maps of stages 2-4, each resized to the frame and min-max scaled."""
    h, w = np.asarray(rgb).shape[:2]
    images, titles = [np.asarray(rgb, np.uint8)], [f"RGB {name}"]
    for k, m in enumerate(maps):
        m = np.asarray(m, np.float32)
        big = np.asarray(Image.fromarray(m).resize((w, h), Image.BILINEAR))
        images.append(colormap(big))
        titles.append(f"LAFS stage {k + 2}: 0.5 +- {np.abs(m - 0.5).max():.1e}")
    return _titled(images, titles)


def legend(class_names, colors) -> Image.Image:
    """Colour swatches with class names (viz.legend; kept here for the report's callers)."""
    return viz.legend(class_names, colors)


def write_json(path, payload: dict) -> Path:
    """Atomic JSON write (never NaN); see asymformer.files."""
    return files.write_json(path, payload)


def _table(rows: list[list], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(rel: str, alt: str) -> str:
    return f'<p><img src="{html.escape(rel)}" alt="{html.escape(alt)}"></p>'


def _speed_rows(speed: list[dict]) -> list[list]:
    rows = []
    for s in speed:
        if "median_ms" in s:
            rows.append([s["model"], s["size"], s["backend"], f"{s['median_ms']:.1f}", f"{s['fps']:.2f}",
                         s["iters"], s["threads"]])
        else:
            rows.append([s["model"], s["size"], s.get("backend", ""), "not measured", s.get("skipped", ""), "", ""])
    return rows


def write_html(out, results: dict) -> Path:
    """OUT/report.html from results.json's content; every image is a relative link inside OUT."""
    out = Path(out)
    ev, tr = results["evaluation"], results["training"]
    per_class = [[n, "n/a" if i is None else f"{i:.3f}"] for n, i in zip(ev["class_names"], ev["per_class_iou"])]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>asymformer demo report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 8px;text-align:left}"
        "img{max-width:100%}</style></head><body>",
        "<h1>asymformer demo</h1>",
        f"<p><b>mIoU {ev['miou']:.4f}</b> (pixel accuracy {ev['pixel_acc']:.4f}, mean class accuracy "
        f"{ev['mean_acc']:.4f}) on {ev['num_images']} test synthetic rooms at "
        f"{ev['size'][0]}x{ev['size'][1]}, after {tr['iterations']} iterations ({tr['epochs']} epochs, "
        f"{tr['seconds']:.0f} s) of training <code>{html.escape(results['model'])}</code> from scratch on "
        f"{tr['num_train']} rooms. Total wall time {results['wall_seconds']:.0f} s.</p>",
        f"<p>Command: <code>{html.escape(results['command'])}</code></p>",
        "<h2>Held-out frames</h2>", _img("legend.png", "class colours"),
        *[_img(p, "sample panel") for p in results["files"]["samples"]],
        "<h2>Training</h2>", _img(results["files"]["curves"], "training curves"),
        _table([[k, v] for k, v in tr["settings"].items()], ["setting", "value"]),
        "<h2>Per-class IoU</h2>", _img(results["files"]["per_class_iou"], "per-class IoU"),
        _table(per_class, ["class", "IoU"]), _img(results["files"]["confusion"], "confusion matrix"),
        "<h2>LAFS attention maps</h2><p>The spatial selection map m of LAFS at stages 2-4 "
        "(model(rgb, depth, return_attention=True)), min-max scaled per map. With the released code's "
        "division by C² the map stays close to 0.5 (the caption gives its largest deviation); see "
        "docs/paper_vs_code.md.</p>",
        *[_img(p, "LAFS maps") for p in results["files"]["attention"]],
        "<h2>Speed (CPU, batch 1, model call only)</h2>",
        _table(_speed_rows(results["speed"]), ["model", "input", "backend", "median ms", "FPS", "runs", "threads"]),
        "<p>Median of the timed runs after warm-up; BatchNorms folded (model.fuse()). See docs/benchmarks.md.</p>",
        "</body></html>",
    ]
    path = out / "report.html"
    files.atomic_write_text(path, "\n".join(parts))
    return path


def save(image: Image.Image, path) -> Path:
    return viz.save_image(image, path)
