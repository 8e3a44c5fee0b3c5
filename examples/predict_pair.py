"""Segment one RGB-D pair with a checkpoint and save the colourised labels and an overlay.

    python examples/predict_pair.py CHECKPOINT rgb.png depth.png out_dir [--depth-unit U]

Works with our .safetensors files and the official AsymFormer .pth checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asymformer import Segmenter
from asymformer.data.io import read_depth, read_rgb, write_png
from asymformer.viz import colorize, overlay


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("rgb")
    p.add_argument("depth")
    p.add_argument("out")
    p.add_argument("--depth-unit", type=float, default=None,
                   help="metres per stored depth value (default: float files metres, 16-bit PNGs mm)")
    args = p.parse_args()

    seg = Segmenter(args.checkpoint)  # device "auto": the GPU when there is one
    rgb = read_rgb(args.rgb)
    depth = read_depth(args.depth, args.depth_unit)  # float metres
    result = seg(rgb, depth)
    names = seg.class_names or [str(i) for i in range(seg.num_classes)]
    color = colorize(result.labels, seg.colors)  # the checkpoint's palette, as `asymformer predict`
    out = Path(args.out)
    write_png(out / "labels_color.png", color)
    write_png(out / "overlay.png", overlay(rgb, color, 0.5))
    counts = {names[c]: int((result.labels == c).sum()) for c in set(result.labels.ravel().tolist())}
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    print(f"{seg}: mean confidence {result.confidence.mean():.3f}; largest classes {top}; wrote {out}")


if __name__ == "__main__":
    main()
