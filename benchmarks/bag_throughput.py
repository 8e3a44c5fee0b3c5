"""Bag processing speed: end-to-end frames/s of `predict --bag` vs the model-only rate (JSON).

    python benchmarks/bag_throughput.py --threads 2 --frames 10 --rounds 3 [--precision int8] [--optimize] \\
        [--color raw|jpeg] [--depth raw|compressedDepth] [--model asymformer_b0_t]

Writes a synthetic realsense2_camera-style recording itself (rendered rooms at 480x640: colour,
aligned depth in millimetres, camera info; raw or compressed), then measures with ONE Segmenter:
- model_only_fps: Segmenter calls on frames already decoded in memory (the same pre/post-processing
  the pipeline runs);
- end_to_end_fps: `robot.pipeline.process_bag` on the recording (reading, pairing, decoding,
  inference, overlay + point cloud + labels + confidence encoding, MCAP writing, input copy);
- ratio = end_to_end / model_only (the goal: >= 0.85 on the same backend and size); the two are
  measured in interleaved rounds (--rounds), so load drift on a shared machine hits both alike;
- pipeline_without_model_fps: the same run with a stand-in that returns a stored result, i.e.
  what reading, decoding, encoding and writing cost on their own (they overlap the model, so
  the ratio stays near 1 while they are much faster than the model and cores are free).
Peak RSS after each round stays flat: frames stream through. The CPU model is printed.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from asymformer.deploy.benchmark import environment
from asymformer.deploy.segmenter import Segmenter
from asymformer.models import create_model

COLOR, DEPTH, INFO = "/camera/camera/color/image_raw", "/camera/camera/aligned_depth_to_color/image_raw", \
    "/camera/camera/color/camera_info"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_recording(path: Path, frames: int, h: int, w: int, color: str, depth: str, distinct: int = 8) -> list:
    """A rosbag2 MCAP like `ros2 bag record` of realsense2_camera with align_depth; returns the
    distinct decoded (rgb, depth_m) frames it cycles through."""
    import io
    import struct

    from PIL import Image
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from asymformer.data import SyntheticRooms

    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    rooms = SyntheticRooms(distinct, height=h, width=w, seed=1)
    samples = [rooms[i] for i in range(distinct)]

    def hdr(t, frame="camera_color_optical_frame"):
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9),
                                        frame_id=frame)

    def png(a):
        b = io.BytesIO()
        Image.fromarray(a).save(b, format="PNG", compress_level=1)
        return np.frombuffer(b.getvalue(), np.uint8)

    k = np.array([525.0, 0, w / 2 - 0.5, 0, 525.0, h / 2 - 0.5, 0, 0, 1])
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as wr:
        cc = wr.add_connection(COLOR, "sensor_msgs/msg/" + ("Image" if color == "raw" else "CompressedImage"),
                               typestore=ts)
        cd = wr.add_connection(DEPTH, "sensor_msgs/msg/" + ("Image" if depth == "raw" else "CompressedImage"),
                               typestore=ts)
        ci = wr.add_connection(INFO, "sensor_msgs/msg/CameraInfo", typestore=ts)
        for i in range(frames):
            s = samples[i % distinct]
            t = 1_700_000_000 * 10**9 + i * 33_333_333
            rgb, mm = s["rgb"], np.round(s["depth"] * 1000).astype(np.uint16)
            if color == "raw":
                m = T["sensor_msgs/msg/Image"](header=hdr(t), height=h, width=w, encoding="rgb8", is_bigendian=0,
                                               step=3 * w, data=rgb.reshape(-1))
            else:
                b = io.BytesIO()
                Image.fromarray(rgb).save(b, format="JPEG", quality=90)
                m = T["sensor_msgs/msg/CompressedImage"](header=hdr(t), format="rgb8; jpeg compressed bgr8",
                                                         data=np.frombuffer(b.getvalue(), np.uint8))
            wr.write(cc, t + 5_000_000, ts.serialize_cdr(m, m.__msgtype__))
            if depth == "raw":
                d = T["sensor_msgs/msg/Image"](header=hdr(t), height=h, width=w, encoding="16UC1", is_bigendian=0,
                                               step=2 * w, data=mm.view(np.uint8).reshape(-1))
            else:
                d = T["sensor_msgs/msg/CompressedImage"](
                    header=hdr(t), format="16UC1; compressedDepth png",
                    data=np.concatenate([np.frombuffer(struct.pack("<iff", 0, 0, 0), np.uint8), png(mm)]))
            wr.write(cd, t + 6_000_000, ts.serialize_cdr(d, d.__msgtype__))
            info = T["sensor_msgs/msg/CameraInfo"](header=hdr(t), height=h, width=w, distortion_model="plumb_bob",
                                                   d=np.zeros(5), k=k, r=np.eye(3).reshape(-1), p=np.zeros(12),
                                                   binning_x=0, binning_y=0, roi=roi)
            wr.write(ci, t + 5_000_000, ts.serialize_cdr(info, info.__msgtype__))
    return [(s["rgb"], np.round(s["depth"] * 1000).astype(np.float32) / 1000) for s in samples]


def model_only(seg: Segmenter, frames: list, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        rgb, d = frames[i % len(frames)]
        seg(rgb, d, depth_unit=1.0)
    return n / (time.perf_counter() - t0)


class _NoModel:
    """A Segmenter stand-in that returns a precomputed result: what the pipeline costs without a model."""

    def __init__(self, seg: Segmenter, frame):
        self.class_names, self.colors, self.backend, self.device = seg.class_names, seg.colors, "none", "cpu"
        self.result = seg(frame[0], frame[1], depth_unit=1.0)

    def __call__(self, rgb, depth, depth_unit=None):
        return self.result


def main() -> None:
    from asymformer.robot.pipeline import process_bag

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="asymformer_b0_t")
    p.add_argument("--size", default="480x640", help="recording HxW (the model runs at this size)")
    p.add_argument("--frames", type=int, default=10, help="frames per round (the recording's length)")
    p.add_argument("--rounds", type=int, default=3, help="model-only / end-to-end rounds, interleaved")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "int8", "bf16"), default="fp32")
    p.add_argument("--optimize", action="store_true", help="pick the fastest exact backend (as predict --optimize)")
    p.add_argument("--color", choices=("raw", "jpeg"), default="raw")
    p.add_argument("--depth", choices=("raw", "compressedDepth"), default="raw")
    p.add_argument("--outputs", default="labels,confidence,overlay,points")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="asymformer-bagbench-"))
    try:
        frames = write_recording(tmp / "rec", args.frames, h, w, args.color, args.depth)
        torch.manual_seed(0)
        seg = Segmenter(create_model(args.model).eval(), size=(h, w), optimize=args.optimize,
                        precision=args.precision)
        model_only(seg, frames, 3)  # warm-up
        model_rates, e2e_rates, in_pipeline, rss = [], [], [], []
        for i in range(args.rounds):  # interleaved, so load drift on a shared machine hits both alike
            model_rates.append(model_only(seg, frames, args.frames))
            rss.append(_rss_mb())
            r = process_bag(seg, tmp / "rec", tmp / f"out{i}", COLOR, DEPTH, INFO,
                            outputs=tuple(args.outputs.split(",")), progress=sys.stderr.isatty())
            e2e_rates.append(r["end_to_end_fps"])
            in_pipeline.append(r["model_fps"])
            shutil.rmtree(tmp / f"out{i}")
        rss.append(_rss_mb())
        io = process_bag(_NoModel(seg, frames[0]), tmp / "rec", tmp / "io", COLOR, DEPTH, INFO,
                         outputs=tuple(args.outputs.split(",")), progress=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    model_fps, e2e_fps = sum(model_rates) / len(model_rates), sum(e2e_rates) / len(e2e_rates)
    print(json.dumps({
        "environment": environment(), "command": " ".join(sys.argv),
        "config": {"model": args.model, "size": [h, w], "frames_per_round": args.frames, "rounds": args.rounds,
                   "precision": args.precision, "optimize": args.optimize, "backend": seg.backend,
                   "color": args.color, "depth": args.depth, "outputs": args.outputs, "threads": args.threads},
        "model_only_fps": round(model_fps, 3), "end_to_end_fps": round(e2e_fps, 3),
        "ratio": round(e2e_fps / model_fps, 3),
        "per_round": {"model_only_fps": [round(v, 3) for v in model_rates], "end_to_end_fps": e2e_rates,
                      "ratio": [round(e / m, 3) for e, m in zip(e2e_rates, model_rates, strict=True)],
                      "segmenter_fps_inside_pipeline": in_pipeline},
        "pipeline_without_model_fps": io["end_to_end_fps"],
        "pipeline_ms_per_frame": round(1000 / io["end_to_end_fps"], 2),
        "frames_written": io["frames"], "skipped": io["skipped"],
        "peak_rss_mb_after_each_round": [round(v, 1) for v in rss],
    }, indent=1))


if __name__ == "__main__":
    main()
