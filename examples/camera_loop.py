"""Live segmentation from an Intel RealSense camera (pyrealsense2), or a folder of recorded frames,
shown with OpenCV when installed.

    python examples/camera_loop.py CHECKPOINT [--size 480x640] [--optimize]          # a RealSense
    python examples/camera_loop.py CHECKPOINT --rgb "frames/*_rgb.png" --depth "frames/*_depth.png"

Neither pyrealsense2 nor OpenCV is a dependency of asymformer; install the one you need
(`pip install pyrealsense2 opencv-python`). RealSense depth is uint16 in millimetres (the
default depth unit 0.001 m) and is aligned to the colour stream before segmentation. Without a
camera, --rgb / --depth replay saved frames (FILE, DIR or quoted GLOB, paired by name as
`asymformer predict` pairs them; 16-bit PNG depth is millimetres, float files metres).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from asymformer import Segmenter
from asymformer.viz import colorize, overlay


def realsense_frames(height: int, width: int):
    """Yield (rgb uint8 H×W×3, depth uint16 H×W, depth unit in metres) from the first RealSense camera."""
    try:
        import pyrealsense2 as rs
    except ImportError:
        raise SystemExit("pyrealsense2 is not installed: pip install pyrealsense2") from None
    pipe, cfg = rs.pipeline(), rs.config()
    cfg.enable_stream(rs.stream.color, width, height, rs.format.rgb8, 30)
    cfg.enable_stream(rs.stream.depth, width, height, rs.format.z16, 30)
    profile = pipe.start(cfg)
    unit = profile.get_device().first_depth_sensor().get_depth_scale()  # metres per stored value
    align = rs.align(rs.stream.color)
    try:
        while True:
            frames = align.process(pipe.wait_for_frames())
            color, depth = frames.get_color_frame(), frames.get_depth_frame()
            if color and depth:
                yield np.asanyarray(color.get_data()), np.asanyarray(depth.get_data()), unit
    finally:
        pipe.stop()


def folder_frames(rgb: str, depth: str):
    """Yield (rgb, depth in metres, 1.0) for each saved pair, as `asymformer predict` reads them."""
    from asymformer.data.io import read_depth, read_rgb
    from asymformer.deploy.predict import pair_files

    for _, rgb_path, depth_path, _ in pair_files(rgb, depth):
        yield read_rgb(rgb_path), read_depth(depth_path), 1.0


def show(image: np.ndarray, text: str) -> bool:
    """Display with OpenCV when available; returns False when the user pressed q / Esc."""
    try:
        import cv2
    except ImportError:
        print(text)
        return True
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    cv2.putText(bgr, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    cv2.imshow("asymformer", bgr)
    return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--size", default="480x640", help="camera stream HxW")
    p.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=False,
                   help="measure backends first, keep the fastest")
    p.add_argument("--rgb", help="saved colour frames instead of a camera: FILE, DIR or quoted GLOB")
    p.add_argument("--depth", help="saved depth frames paired with --rgb by name")
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    if (args.rgb is None) != (args.depth is None):
        p.error("--rgb and --depth go together (saved frames), or give neither (a RealSense camera)")
    frames = folder_frames(args.rgb, args.depth) if args.rgb else realsense_frames(h, w)

    seg = None
    last = time.perf_counter()
    for rgb, depth, unit in frames:
        if seg is None:  # the depth unit comes from the camera, so build once we know it
            seg = Segmenter(args.checkpoint, depth_unit=unit, size=(h, w), optimize=args.optimize)
        result = seg(rgb, depth)
        now = time.perf_counter()
        fps, last = 1.0 / max(now - last, 1e-9), now
        if not show(overlay(rgb, colorize(result.labels, seg.colors), 0.5), f"{fps:.1f} FPS ({seg.backend})"):
            break


if __name__ == "__main__":
    main()
