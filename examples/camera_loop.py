"""Live segmentation from an Intel RealSense camera (pyrealsense2), or a folder of recorded frames,
on the streaming runtime, shown with OpenCV.

    python examples/camera_loop.py CHECKPOINT [--size 480x640] [--optimize] [--rerun | --rerun-save FILE.rrd]
    python examples/camera_loop.py CHECKPOINT --rgb "frames/*_rgb.png" --depth "frames/*_depth.png"

The camera thread hands every frame to `asymformer.stream.StreamRunner` without waiting;
the runtime keeps the newest frame, drops the ones the model cannot keep up with, and overlaps
pre- and post-processing with inference. The window shows each result on the frame it came from,
with the frames/s, the latency (capture -> result) and the frames dropped so far.

Neither pyrealsense2 nor OpenCV is a dependency of asymformer; install the one you need
(`pip install pyrealsense2 opencv-python`); `--rerun` needs `pip install 'asymformer[viewing]'`.
RealSense depth is uint16 in millimetres (the camera reports its unit) and is aligned to the
colour stream before segmentation. Without a camera, --rgb / --depth replay saved frames (FILE,
DIR or quoted GLOB, paired by name as `asymformer predict` pairs them; 16-bit PNG depth is
millimetres, float files metres); a replay shows every frame (it waits for each result).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np

from asymformer import Segmenter
from asymformer.stream import StreamRunner
from asymformer.viz import colorize, overlay


def realsense_frames(height: int, width: int):
    """Yield (rgb uint8 H×W×3, depth uint16 H×W, depth unit in metres, intrinsics or None) from
    the first RealSense camera, at the camera's rate."""
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
        intrinsics = _intrinsics(profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics())
    except AttributeError:  # an older SDK or a stand-in camera: no 3-D view, the rest works
        intrinsics = None
    try:
        while True:
            frames = align.process(pipe.wait_for_frames())
            color, depth = frames.get_color_frame(), frames.get_depth_frame()
            if color and depth:
                yield np.asanyarray(color.get_data()), np.asanyarray(depth.get_data()), unit, intrinsics
    finally:
        pipe.stop()


def folder_frames(rgb: str, depth: str):
    """Yield (rgb, depth in metres, 1.0, None) for each saved pair, as `asymformer predict` reads them."""
    from asymformer.data.io import read_depth, read_rgb
    from asymformer.deploy.predict import pair_files

    for _, rgb_path, depth_path, _ in pair_files(rgb, depth):
        yield read_rgb(rgb_path), read_depth(depth_path), 1.0, None


def _intrinsics(i):
    from asymformer.outputs.points import Intrinsics

    return Intrinsics(i.fx, i.fy, i.ppx, i.ppy, width=i.width, height=i.height)


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


def produce(frames, first, runner: StreamRunner, stop: threading.Event, errors: list, replay: bool) -> None:
    """The camera thread: every frame goes to the runtime at once (it never blocks). A replay of
    saved frames waits for each result instead, so no frame is dropped."""
    try:
        rgb, depth = first
        submitted = 0
        while not stop.is_set():
            runner.submit(rgb, depth, time.time_ns())  # stamped at capture
            submitted += 1
            while replay and runner.processed < submitted and not stop.is_set():
                time.sleep(0.002)
            rgb, depth, _, _ = next(frames)
    except StopIteration:
        pass
    except Exception as exc:  # noqa: BLE001 - shown by the main thread
        errors.append(exc)
    finally:
        frames.close()  # releases the camera
        runner.close(drain=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--size", default="480x640", help="camera stream HxW")
    p.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=False,
                   help="measure backends first, keep the fastest")
    p.add_argument("--rgb", help="saved colour frames instead of a camera: FILE, DIR or quoted GLOB")
    p.add_argument("--depth", help="saved depth frames paired with --rgb by name")
    p.add_argument("--rerun", action="store_true", help="also show the stream in a Rerun viewer (3-D, latency)")
    p.add_argument("--rerun-save", metavar="FILE.rrd", help="also record the stream to a Rerun file")
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))

    if (args.rgb is None) != (args.depth is None):
        p.error("--rgb and --depth go together (saved frames), or give neither (a RealSense camera)")
    frames = folder_frames(args.rgb, args.depth) if args.rgb else realsense_frames(h, w)
    rgb, depth, unit, intrinsics = next(frames)  # the depth unit comes from the camera: build the Segmenter now
    seg = Segmenter(args.checkpoint, depth_unit=unit, size=(h, w), optimize=args.optimize)
    view = None
    if args.rerun or args.rerun_save:
        from asymformer.outputs.rerun_view import RerunView

        view = RerunView(seg.class_names, seg.colors, save=args.rerun_save, spawn=args.rerun)
    runner = StreamRunner(seg)
    print(f"warmed up in {runner.warm_up(rgb, depth):.1f} s (the first frames build the model's fast path)",
          file=sys.stderr)
    stop, errors = threading.Event(), []
    camera = threading.Thread(target=produce, args=(frames, (rgb, depth), runner, stop, errors, bool(args.rgb)),
                              daemon=True)
    camera.start()
    last = time.perf_counter()
    try:
        for result in runner:
            now = time.perf_counter()
            fps, last = 1.0 / max(now - last, 1e-9), now
            stats = runner.stats()
            text = f"{fps:.1f} FPS ({seg.backend}), latency {result.latency_ms:.0f} ms, {stats['dropped']} dropped"
            image = overlay(result.rgb, colorize(result.labels, seg.colors), 0.5)
            if view is not None:
                view.log_result(result, intrinsics, depth_m=result.depth * unit, dropped=stats["dropped"])
            if not show(image, text):
                break
    finally:
        stop.set()
        camera.join()
        if view is not None:
            view.close()
    if errors:
        raise SystemExit(f"camera: {errors[0]}")


if __name__ == "__main__":
    main()
