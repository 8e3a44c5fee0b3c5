"""Median CPU latency of AsymFormer-B0-T at 480×640, batch 1, 2 threads: eager vs BN-folded (JSON).

    python benchmarks/model_cpu.py [--threads 2] [--iters 5] [--model asymformer_b0_t] [--size 480x640]
"""

from __future__ import annotations

import argparse
import json

import torch

from asymformer.deploy.benchmark import run_benchmark
from asymformer.models import create_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="asymformer_b0_t")
    p.add_argument("--size", default="480x640", help="HxW (default 480x640)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    h, w = (int(v) for v in args.size.lower().split("x"))
    report = run_benchmark(create_model(args.model), ("eager", "fused"), h, w,
                           warmup=args.warmup, iters=args.iters)
    res = report["results"]
    report["fused_speedup"] = round(res["eager"]["median_ms"] / res["fused"]["median_ms"], 3)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
