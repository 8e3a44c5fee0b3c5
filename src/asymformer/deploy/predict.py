"""Segment RGB-D files: pair them by name, write colourised labels, overlays, panels, attention.

Outputs per frame <name> in OUT: <name>.png (colourised labels), and on request
<name>_labels.png (class indices, uint8, 255 = void-free), <name>_overlay.png,
<name>_panel.png (rgb | depth | prediction | ground truth) and <name>_attention.png
(LAFS spatial maps, paper Fig. 2); predict.json sums up timing and FPS.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

import numpy as np

from asymformer.files import write_json

from . import render

SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")


def expand(spec, what: str) -> list[Path]:
    """FILE, DIR (its image files) or GLOB pattern -> sorted paths; FileNotFoundError when empty."""
    p = Path(spec)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
        if not files:
            raise FileNotFoundError(f"--{what} directory {p} has no {'/'.join(SUFFIXES)} files")
        return files
    if any(ch in str(spec) for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(str(spec)) if Path(f).is_file())
        if not files:
            raise FileNotFoundError(f"--{what} pattern {spec!r} matches no files")
        return files
    raise FileNotFoundError(f"--{what} {spec} is not a file, a directory or a glob pattern")


def _by_name(paths: list[Path], what: str) -> dict[str, Path]:
    names = {}
    for path in paths:
        if path.stem in names:
            raise ValueError(f"--{what}: two files named {path.stem!r} ({names[path.stem].name}, {path.name}); "
                             f"keep one per name")
        names[path.stem] = path
    return names


def pair_files(rgb, depth, labels=None) -> list[tuple[str, Path, Path, Path | None]]:
    """(name, rgb, depth, label-or-None) for each frame; files are paired by name without extension.

    A single file on each side is paired whatever the names. Different counts or names that
    have no partner are errors that list the culprits.
    """
    rgbs, depths = expand(rgb, "rgb"), expand(depth, "depth")
    labs = expand(labels, "labels") if labels is not None else []
    if len(rgbs) == 1 and len(depths) == 1 and len(labs) <= 1:
        return [(rgbs[0].stem, rgbs[0], depths[0], labs[0] if labs else None)]
    if len(rgbs) != len(depths):
        raise ValueError(f"{len(rgbs)} rgb files but {len(depths)} depth files; give one depth image per "
                         f"rgb image, with the same name")
    r, d, lab = _by_name(rgbs, "rgb"), _by_name(depths, "depth"), _by_name(labs, "labels")
    missing = sorted(set(r) ^ set(d))
    if missing:
        raise ValueError(f"unpaired names between --rgb and --depth: {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''}; files pair by name without extension")
    if lab and set(r) - set(lab):
        raise ValueError(f"no ground-truth label for: {', '.join(sorted(set(r) - set(lab))[:5])}")
    return [(n, r[n], d[n], lab.get(n)) for n in sorted(r)]


def palette_for(num_classes: int) -> np.ndarray:
    from asymformer.data.classes import make_palette

    return make_palette(num_classes)


def _gt_to_zero_based(label: np.ndarray, base: str) -> np.ndarray:
    if base == "one_based":
        return np.where(label == 0, 255, label - 1)
    if base == "zero_based":
        return label
    raise ValueError(f"labels base must be 'one_based' or 'zero_based', got {base!r}")


def predict_files(segmenter, pairs, out_dir, depth_unit: float = 0.001, overlay: bool = False,
                  panel: bool = False, attention: bool = False, save_labels: bool = False,
                  alpha: float = 0.5, labels_base: str = "one_based", progress: bool = True) -> dict:
    """Run `segmenter` on each pair and write the pictures; returns (and writes) the summary."""
    from tqdm import tqdm

    from asymformer.data.classes import colorize
    from asymformer.data.io import read_depth, read_label, read_rgb, write_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colors = palette_for(segmenter.num_classes)
    model_s, frames = 0.0, []
    t_all = time.perf_counter()
    for name, rgb_path, depth_path, label_path in tqdm(pairs, desc="predict", unit="frame", disable=not progress):
        rgb = read_rgb(rgb_path)
        depth = read_depth(depth_path, depth_unit)
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"{depth_path} is {depth.shape[0]}×{depth.shape[1]} but {rgb_path} is "
                             f"{rgb.shape[0]}×{rgb.shape[1]}; register depth to the colour image first")
        t0 = time.perf_counter()
        res = segmenter(rgb, depth, return_attention=attention)
        model_s += time.perf_counter() - t0
        color = colorize(res.labels, colors)
        write_png(out / f"{name}.png", color)
        if save_labels:
            write_png(out / f"{name}_labels.png", res.labels.astype(np.uint8))
        if overlay:
            write_png(out / f"{name}_overlay.png", render.overlay(rgb, color, alpha))
        if panel:
            tiles = [rgb, render.depth_image(depth), color]
            titles = ["rgb", "depth", "prediction"]
            if label_path is not None:
                gt = _gt_to_zero_based(read_label(label_path), labels_base)
                tiles.append(colorize(gt, colors))
                titles.append("ground truth")
            write_png(out / f"{name}_panel.png", render.panel(tiles, titles))
        if attention:
            write_png(out / f"{name}_attention.png", render.attention_panel(rgb, res.attention, segmenter.size))
        frames.append({"name": name, "mean_confidence": round(float(res.confidence.mean()), 4)})
    total = time.perf_counter() - t_all
    n = len(frames)
    summary = {"frames": n, "backend": segmenter.backend, "device": str(segmenter.device),
               "model_fps": round(n / model_s, 3) if model_s else None,
               "end_to_end_fps": round(n / total, 3) if total else None,
               "model_ms_per_frame": round(1000 * model_s / max(n, 1), 2), "outputs": str(out),
               "per_frame": frames}
    write_json(out / "predict.json", summary)
    return summary
