"""Every CPU inference path at 480×640, batch 1, side by side, plus what optimize_for_inference picks (JSON).

    python benchmarks/inference_cpu.py [--threads 1 2] [--backends eager,fused,...] [--iters 5] [--size 480x640]

The machine is shared and noisy: each thread count runs all backends back to back, and the
ratios to eager of the same run are the numbers to compare.
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
    p.add_argument("--threads", type=int, nargs="+", default=[2])
    p.add_argument("--backends", default="eager,fused,channels_last,jit,onnxruntime",
                   help="add 'compile' to include torch.compile (minutes of compilation on 2 cores)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=5)
    args = p.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    torch.manual_seed(0)
    model = create_model(args.model)
    runs = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        report = run_benchmark(model, args.backends, h, w, warmup=args.warmup,
                               iters=args.iters)
        res = report["results"]
        eager = res.get("eager", {}).get("median_ms")
        summary = {name: {"median_ms": r.get("median_ms"), "p90_ms": r.get("p90_ms"),
                          "speedup_vs_eager": round(eager / r["median_ms"], 3) if eager and "median_ms" in r else None,
                          "max_abs_diff": r.get("max_abs_diff"), "skipped": r.get("skipped")}
                   for name, r in res.items()}
        exact = {n: s for n, s in summary.items() if s["median_ms"] and (s["max_abs_diff"] or 0) <= 1e-4}
        fastest = min(exact, key=lambda n: exact[n]["median_ms"]) if exact else None
        runs.append({"threads": threads, "fastest_exact": fastest, "summary": summary, "full": report})
    print(json.dumps({"model": args.model, "size": [h, w], "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
