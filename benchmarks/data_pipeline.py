"""Data pipeline speed on ONE core: transforms at 480×640 and synthetic rendering at 240×320.

Prints JSON. Targets: TrainTransform and EvalTransform <= 30 ms per 480×640 sample, synthetic
rooms >= 20 frames/s at 240×320. Medians of wall time are reported, plus the minimum and the
median thread CPU time, which stay meaningful when other work shares the cores.

    .venv/bin/python benchmarks/data_pipeline.py [--samples 20] [--frames 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from asymformer.data.synthetic import render_frame
from asymformer.data.transforms import EvalTransform, TrainTransform


def _times(fn, n: int) -> tuple[list[float], list[float]]:
    """Wall and thread-CPU milliseconds per call (CPU time is robust to a shared, busy machine)."""
    wall, cpu = [], []
    for i in range(n):
        t, c = time.perf_counter(), time.thread_time()
        fn(i)
        cpu.append((time.thread_time() - c) * 1000.0)
        wall.append((time.perf_counter() - t) * 1000.0)
    return wall, cpu


def _stats(times) -> dict:
    wall, cpu = times
    return {"median_ms": round(float(np.median(wall)), 2), "min_ms": round(float(np.min(wall)), 2),
            "median_cpu_ms": round(float(np.median(cpu)), 2), "n": len(wall)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20, help="samples per transform (>= 20)")
    ap.add_argument("--frames", type=int, default=20, help="synthetic frames to render")
    args = ap.parse_args()
    torch.set_num_threads(1)
    # realistic input: a rendered room at NYUv2 size (textures, holes, 10 classes)
    samples = [render_frame(0, i, 480, 640) for i in range(4)]
    train, ev = TrainTransform(), EvalTransform()
    train(samples[0], np.random.default_rng(0))  # warm-up (imports, allocator)
    t_train = _times(lambda i: train(samples[i % 4], np.random.default_rng(i)), args.samples)
    t_eval = _times(lambda i: ev(samples[i % 4]), args.samples)
    render_frame(1, 0, 240, 320)
    t_syn = _times(lambda i: render_frame(1, i, 240, 320), args.frames)
    result = {
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "train_transform_480x640": _stats(t_train),
        "eval_transform_480x640": _stats(t_eval),
        "synthetic_240x320": {**_stats(t_syn), "frames_per_s": round(1000.0 / np.median(t_syn[0]), 1),
                              "frames_per_s_cpu": round(1000.0 / np.median(t_syn[1]), 1)},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
