"""The demo's self-contained report.html (its pictures are drawn by asymformer.viz).

The HTML links PNGs by relative path, so the output folder can be moved, zipped or opened
straight from disk.
"""

from __future__ import annotations

import html
from pathlib import Path

from asymformer import files


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

